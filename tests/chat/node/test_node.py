"""One chat node (wslab.chat.node.ChatNode) over real stores, in memory (and SQLite where
a store must fail for real), with its clock in the test's hands: logins and their
throttle, the caps on new names and on resumes, lines and their rates, what a new
session gets, and a store that fails."""

import asyncio

import pytest
from chatclient import run

from wslab.chat.errors import AuthError, CloseCode, Refusal
from wslab.chat.node import ChatNode, Limits
from wslab.chat.rules.kdf import CHEAP
from wslab.chat.rules.messages import Kind, Message, Notice, Outbound
from wslab.chat.stores.memory import MemoryCredentials, MemoryLog
from wslab.chat.stores.sqlite import SqliteStore

EPOCH = "epoch-node"
HERE, THERE, ELSEWHERE = "198.51.100.1", "198.51.100.2", "198.51.100.3"


class Clock:
    """Monotonic seconds, moved by the test."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Node:
    """A started ChatNode, what it emitted, and its sessions' handles by name."""

    def __init__(self, node: ChatNode) -> None:
        self.node = node
        self.emitted: list[Outbound] = []

    async def live(self, user, secret="s", address=HERE, **options):
        """Open a session of ``user`` and take it live: (session, handle, items)."""
        handle = f"{user}#{len(self.node.hub) + 1}"
        session, replay = await self.node.open(user, secret, handle, address=address, **options)
        items = await replay.collect()
        return session, handle, items + self.node.go_live(session.id)

    async def say(self, session, *lines, address=HERE):
        """Submit each line; the replies to the session, all lines together."""
        replies = []
        for line in lines:
            replies += await self.node.submit(session.id, line, address=address)
        return replies


def node_with(limits=None, clock=None, log=None, credentials=None):
    """A node on fresh in-memory stores (or those given), secrets hashed cheaply and
    inline, started (``emit`` records into ``Node.emitted``) when awaited."""

    async def started():
        chat = ChatNode(
            log if log is not None else MemoryLog(10, epoch=EPOCH),
            credentials if credentials is not None else MemoryCredentials(),
            kdf=CHEAP,
            limits=limits or Limits(),
            offload=None,
            clock=clock or Clock(),
        )
        wrapper = Node(chat)
        await chat.start(wrapper.emitted.extend)
        return wrapper

    return started()


def on_node(body, *args, **options):
    """Run ``body(chat)`` on a started node (see :func:`node_with`), stopped after it."""

    async def bounded():
        chat = await node_with(*args, **options)
        try:
            await body(chat)
        finally:
            await chat.node.stop()

    run(bounded())


def errors(items):
    return [item.item.text for item in items if item.item.kind is Kind.ERROR]


# -- logins -------------------------------------------------------------------------------


def test_a_new_name_is_registered_and_another_secret_for_it_is_refused_with_4001():
    async def body(chat):
        session, _, _ = await chat.live("Ana", "certo")
        with pytest.raises(AuthError, match="Senha errada para este nome") as refused:
            await chat.node.open("ana", "errado", "intruso", address=THERE)
        assert refused.value.close_code == CloseCode.BAD_SECRET
        assert chat.node.online_here() == ["ana"] and len(chat.node.hub) == 1
        again, _, _ = await chat.live("ANA", "certo", address=THERE)
        assert (session.user, again.user) == ("ana", "ana")

    on_node(body)


@pytest.mark.parametrize(
    ("user", "secret", "words"),
    [
        ("nome com espaço", "s", "Nome de usuário inválido"),
        ("a" * 33, "s", "Nome de usuário inválido"),
        ("ana", "", "A senha deve ser um texto não vazio."),
        ("ana", None, "A senha deve ser um texto não vazio."),
    ],
)
def test_a_bad_name_or_secret_is_refused_with_4000_and_registers_nothing(user, secret, words):
    async def body(chat):
        with pytest.raises(Refusal, match=words) as refused:
            await chat.node.open(user, secret, "h", address=HERE)
        assert refused.value.close_code == CloseCode.BAD_HELLO
        assert chat.node.online_here() == [] and await chat.node.credentials.count() == 0

    on_node(body)


def test_wrong_secrets_make_the_name_wait_everywhere_but_where_it_logged_in_before():
    """After ``login_free`` wrong secrets in a row the next one says how long to wait,
    and until then every try for the name waits (4029), from any address, except from
    one the name logged in from before: its owner is not locked out by a guesser."""

    clock = Clock()

    async def body(chat):
        await chat.live("bia", "certo", address=HERE)  # bia's own machine
        reasons = []
        for guess in range(3):
            with pytest.raises(AuthError) as refused:
                await chat.node.open("bia", f"chute{guess}", "h", address=THERE)
            reasons.append(str(refused.value))
        assert ["próxima tentativa" in r for r in reasons] == [False, False, True]
        assert reasons[2].endswith("a próxima tentativa só daqui a 1 s.")
        for address in (THERE, ELSEWHERE):  # even with the right secret
            with pytest.raises(Refusal, match="tente de novo em 1 s") as waiting:
                await chat.node.open("bia", "certo", "h", address=address)
            assert waiting.value.close_code == CloseCode.THROTTLED
        await chat.live("bia", "certo", address=HERE)  # the owner's address is spared
        clock.now += 1.0
        await chat.live("bia", "certo", address=THERE)  # waited: in, and the count cleared
        with pytest.raises(AuthError, match="já está registrado com outra senha"):
            await chat.node.open("bia", "chute", "h", address=THERE)

    on_node(body, Limits(login_free=2), clock)


def test_new_names_are_capped_per_address_per_minute_and_in_total():
    clock = Clock()

    async def body(chat):
        await chat.live("u1", address=HERE)
        await chat.live("u2", address=HERE)
        with pytest.raises(Refusal, match="Nomes novos demais") as refused:
            await chat.node.open("u3", "s", "h", address=HERE)
        assert refused.value.close_code == CloseCode.NAME_LIMIT
        await chat.live("u3", address=THERE)  # another address has its own count
        await chat.live("u1", address=HERE)  # a name already registered still logs in
        clock.now += 30.0  # 2 a minute: one more after 30 s
        await chat.live("u4", address=HERE)
        with pytest.raises(Refusal, match="limite de usuários registrados") as full:
            await chat.node.open("u5", "s", "h", address=ELSEWHERE)
        assert full.value.close_code == CloseCode.NAME_LIMIT
        assert await chat.node.credentials.count() == 4

    on_node(body, Limits(registrations_per_minute=2, max_users=4), clock)


# -- lines --------------------------------------------------------------------------------


def test_a_line_is_kept_and_reaches_its_recipients_through_emit():
    async def body(chat):
        ana, ana_h, _ = await chat.live("ana")
        _, bia_h, _ = await chat.live("bia")
        _, joao_h, _ = await chat.live("joao")
        assert await chat.say(ana, "oi", "/msg bia psiu") == []  # answered through emit
        assert [(item.item, tuple(item.handles)) for item in chat.emitted] == [
            (Message(Kind.PUBLIC, 1, "ana", None, "oi"), (ana_h, bia_h, joao_h)),
            (Message(Kind.PRIVATE, 2, "ana", "bia", "psiu"), (ana_h, bia_h)),
        ]

    on_node(body)


def test_a_line_to_a_name_nobody_registered_is_an_error_for_its_session_only():
    async def body(chat):
        ana, ana_h, _ = await chat.live("ana")
        await chat.live("bia")
        replies = await chat.say(ana, "/msg ninguem oi")
        assert replies == [
            Outbound(
                Notice(Kind.ERROR, "O usuário 'ninguem' não existe: ninguém entrou com esse nome."),
                (ana_h,),
            )
        ]
        assert chat.emitted == [] and chat.node.log.state.newest == 0

    on_node(body)


def test_a_line_to_a_registered_name_offline_is_kept_for_it():
    async def body(chat):
        joao, _, _ = await chat.live("joao")
        chat.node.close(joao.id)
        ana, ana_h, _ = await chat.live("ana")
        assert chat.node.awaits_store("/msg joao oi") is False  # known here: no lookup
        assert await chat.say(ana, "/msg joao volta logo") == []
        (item,) = chat.emitted
        assert item.item.offset == 1 and tuple(item.handles) == (ana_h,)

    on_node(body)


def test_who_answers_the_asking_session_only():
    async def body(chat):
        ana, ana_h, _ = await chat.live("ana")
        await chat.live("bia")
        await chat.live("ana")
        assert await chat.say(ana, "/who") == [
            Outbound(Notice(Kind.SYSTEM, "Online agora: ana, bia."), (ana_h,))
        ]
        assert chat.emitted == []

    on_node(body)


def test_lines_over_the_users_rate_are_refused_across_its_sessions_until_it_refills():
    clock = Clock()

    async def body(chat):
        phone, _, _ = await chat.live("ana")
        laptop, _, _ = await chat.live("ana")
        assert await chat.say(phone, "um", "dois") == []
        (refused,) = errors(await chat.say(laptop, "três"))  # a new session: no new burst
        assert refused.startswith("Devagar: limite de ritmo excedido (em média 1 mensagens")
        assert chat.node.log.state.newest == 2  # the refused line was not kept
        clock.now += 1.0
        assert await chat.say(laptop, "três") == []
        assert chat.node.log.state.newest == 3

    on_node(body, Limits(max_rate=1.0, burst=2), clock)


def test_an_address_may_send_a_few_users_worth_of_lines():
    limits = Limits(max_rate=1.0, burst=2, address_share=2.0)  # the address: 4 at once

    async def body(chat):
        users = [(await chat.live(f"u{n}"))[0] for n in range(3)]
        assert await chat.say(users[0], "a", "b") == []
        assert await chat.say(users[1], "c", "d") == []
        assert errors(await chat.say(users[2], "e"))  # its own bucket is full: the address's is not
        assert await chat.say(users[2], "e", address=THERE) == []

    on_node(body, limits)


def test_every_frame_is_charged_to_the_rate_a_malformed_one_too():
    """The service charges a frame it cannot parse with ``spend``: the same buckets."""

    async def body(chat):
        ana, _, _ = await chat.live("ana")
        assert chat.node.spend(ana.id, HERE) is None
        assert chat.node.spend(ana.id, HERE) is None
        assert errors(chat.node.spend(ana.id, HERE))
        assert errors(await chat.say(ana, "oi"))
        with pytest.raises(KeyError):
            chat.node.spend("nunca", HERE)

    on_node(body, Limits(max_rate=1.0, burst=2))


# -- what a new session gets --------------------------------------------------------------


def test_a_resume_gets_exactly_what_it_missed_and_a_new_device_the_history_it_asks_for():
    async def body(chat):
        await chat.live("joao")
        writer, _, _ = await chat.live("bia")
        assert await chat.say(writer, "m1", "m2", "/msg joao só dele", "m4", "m5") == []
        session, _, items = await chat.live("ana", resume=(EPOCH, 2))
        assert (session.recovered, session.epoch) == (True, EPOCH)
        assert [(i.item.offset, i.replayed) for i in items] == [(4, True), (5, True)]
        _, _, items = await chat.live("ana", history=3)
        assert [i.item.offset for i in items] == [2, 4, 5]  # what ana may see
        _, _, items = await chat.live("ana")
        assert items == []  # nothing asked, nothing replayed

    on_node(body)


def test_a_resume_from_another_epoch_is_told_and_gets_the_recent_history():
    async def body(chat):
        writer, _, _ = await chat.live("bia")
        await chat.say(writer, "m1", "m2")
        session, _, items = await chat.live("ana", resume=("outra", 7))
        assert session.recovered is False
        assert items[0].item.kind is Kind.SYSTEM and "época" in items[0].item.text
        assert [i.item.offset for i in items[1:]] == [1, 2]

    on_node(body)


def test_resumes_from_one_address_come_in_bursts_of_5_a_second():
    clock = Clock()

    async def body(chat):
        for _ in range(5):
            session, _, _ = await chat.live("ana", resume=(EPOCH, 0))
            chat.node.close(session.id)
        with pytest.raises(Refusal, match="Retomadas demais") as refused:
            await chat.node.open("ana", "s", "h", address=HERE, resume=(EPOCH, 0))
        assert refused.value.close_code == CloseCode.TRY_AGAIN_LATER
        await chat.live("ana", address=THERE, resume=(EPOCH, 0))  # its own count
        await chat.live("ana", address=HERE)  # a session that resumes nothing
        for _ in range(10):
            await chat.live("ana", address="", resume=(EPOCH, 0))  # no address: no rate
        clock.now += 1.0
        await chat.live("ana", address=HERE, resume=(EPOCH, 0))

    on_node(body, Limits(replays_per_second=1.0), clock)


# -- sessions and stores ------------------------------------------------------------------


def test_a_closed_session_leaves_and_gets_nothing_more():
    async def body(chat):
        ana, _, _ = await chat.live("ana")
        bia, bia_h, _ = await chat.live("bia")
        chat.node.close(ana.id)
        chat.node.close(ana.id)
        chat.node.close("nunca")
        assert chat.node.online_here() == ["bia"]
        assert chat.node.error(ana.id, "tarde demais") == []
        await chat.say(bia, "oi")
        assert [tuple(item.handles) for item in chat.emitted] == [(bia_h,)]
        with pytest.raises(KeyError):
            await chat.node.submit(ana.id, "oi")

    on_node(body)


def test_only_a_msg_to_a_name_not_yet_known_awaits_the_store():
    async def body(chat):
        await chat.live("bia")
        assert chat.node.awaits_store("/msg ninguem oi") is True
        assert chat.node.awaits_store("/msg bia oi") is False
        assert chat.node.awaits_store("oi") is False
        assert chat.node.awaits_store("/who") is False  # no presence shared with others
        assert chat.node.awaits_store("/nada") is False  # an error, answered at once

    on_node(body)


def test_a_store_that_fails_an_append_answers_the_line_and_keeps_the_session(tmp_path):
    """SQLite's max_page_count makes the file full: the error a full disk gives."""

    store = SqliteStore(str(tmp_path / "chat.db"), 1000)

    async def body(chat):
        ana, _, _ = await chat.live("ana")

        def full(db):
            db.execute(f"PRAGMA max_page_count={db.execute('PRAGMA page_count').fetchone()[0]}")

        await store.run(full)
        replies = []
        for n in range(100):  # until a line needs a page the file may not take
            replies = await chat.say(ana, f"{n:03d} " + "x" * 1990)
            if replies:
                break
        (refused,) = errors(replies)
        assert "Disco cheio" in refused
        kept = chat.node.log.state.newest
        assert [item.item.offset for item in chat.emitted] == list(range(1, kept + 1))
        assert (await chat.say(ana, "/who"))[0].item.text == "Online agora: ana."

    on_node(body, log=store.log, credentials=store.credentials)


# -- names registered and never used again expire (issue 24) --------------------------------


def test_names_never_used_again_expire_so_the_cap_cannot_be_filled_for_good():
    from wslab.chat.errors import Refusal
    from wslab.chat.node import ChatNode, Limits
    from wslab.chat.rules.kdf import CHEAP
    from wslab.chat.stores.memory import MemoryCredentials, MemoryLog

    now = [1_000_000.0]  # the store's wall clock and the node's, moved by hand
    limits = Limits(max_users=2, unused_name_days=30, login_free=None)
    node = ChatNode(
        MemoryLog(),
        MemoryCredentials(clock=lambda: now[0]),
        kdf=CHEAP,
        limits=limits,
        offload=None,
        clock=lambda: now[0],
    )

    async def body():
        await node.start(lambda items: None)
        for name in ("ana", "bot1"):
            session, replay = await node.open(name, "s", object())
            replay.close()
            node.close(session.id)
        again, replay = await node.open("ana", "s", object())  # ana comes back: used
        replay.close()
        with pytest.raises(Refusal) as full:
            await node.open("bot2", "s", object())
        assert full.value.close_code == 4003
        now[0] += 31 * 86400  # a month later: bot1 was never used again
        session, replay = await node.open("bia", "s", object())
        replay.close()
        assert await node.credentials.lookup("bot1") is None
        assert await node.credentials.lookup("ana") is not None
        await node.stop()

    asyncio.run(asyncio.wait_for(body(), 10))
