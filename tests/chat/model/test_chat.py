"""The whole chat as one synchronous object (wslab.chat.model.chat.ChatModel): one test
(or a few) per rule, then property tests.

Property tests: random sequences of connect, resume, submit, take and disconnect
against a deliberately naive oracle. The oracle does not share code with the model: it
keeps the whole log in a list, derives what is visible by scanning it, and mirrors every
open session's queue. Each ``take`` must equal the oracle's queue exactly, which implies
the properties of the issue; the most important ones are also asserted on their own, so
a failure names the broken promise:

- nobody receives a private message not addressed to or sent by them;
- a session receives every message it may see, kept while it was open (and, when it
  resumed, every one after its offset that the history still held);
- inside a session offsets strictly increase, nothing arrives twice;
- errors reach only their origin and consume no offset;
- a wrong secret never opens a session;
- a user who always resumes from the last offset it saw, and is told
  recovered=True, misses nothing and sees nothing twice.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from wslab.chat import AuthError, ChatModel, Kind, Message, Notice, Refusal, Session
from wslab.chat.rules.commands import MAX_TEXT_LENGTH
from wslab.chat.rules.kdf import CHEAP

EPOCH = "epoch-test"
USERS = ["ana", "bia", "joao"]
FAITHFUL = "fiel"


@pytest.fixture
def model() -> ChatModel:
    return ChatModel(retention=5, epoch=EPOCH, kdf=CHEAP)


def texts(deliveries: list[Message]) -> list[str]:
    return [d.text for d in deliveries]


def test_every_router_gets_a_new_epoch():
    epochs = {ChatModel().epoch for _ in range(20)}
    assert len(epochs) == 20
    assert all(isinstance(e, str) and e for e in epochs)


def test_injected_epoch_is_kept():
    assert ChatModel(epoch="fixed", kdf=CHEAP).epoch == "fixed"


@pytest.mark.parametrize("retention", [-1, 1.5, "10", True, None])
def test_bad_retention_is_rejected(retention):
    with pytest.raises(ValueError, match="retention"):
        ChatModel(retention=retention)


@pytest.mark.parametrize("epoch", ["", 3])
def test_bad_epoch_is_rejected(epoch):
    with pytest.raises(ValueError, match="epoch"):
        ChatModel(epoch=epoch)


def test_names_are_case_insensitive_and_kept_lower_case(model):
    s = model.open("Ana.Maria_2-x", "pw")
    assert s.user == "ana.maria_2-x"
    again = model.open("ANA.MARIA_2-X", "pw")
    assert again.user == "ana.maria_2-x"
    assert model.online() == ["ana.maria_2-x"]


@pytest.mark.parametrize(
    "name",
    ["", "a" * 33, "ana maria", "a/b", "ana\n", "<b>", "\U0001f600", "\u0301a", 7, None, b"ana"],
)
def test_bad_names_are_refused_and_open_nothing(model, name):
    with pytest.raises(Refusal, match="Nome de usuário inválido"):
        model.open(name, "pw")
    assert model.online() == []


def test_names_with_accents_register_under_precis(model):
    """Issue 24: PRECIS UsernameCaseMapped (RFC 8265): letters of any script, lower-case,
    NFC; width and case variants are the same name."""
    assert model.open("João", "pw").user == "joão"
    assert model.open("CONCEIÇÃO", "pw2").user == "conceição"
    assert model.open("jo\u0061\u0303o", "pw").user == "joão"  # decomposed: NFC
    assert model.open("\uff4a\uff4f\u00e3\uff4f", "pw").user == "joão"  # fullwidth
    assert model.online() == ["conceição", "joão"]


@pytest.mark.parametrize(
    ("holder", "look_alike"),
    [("alice", "a1ice"), ("mallory", "rnallory"), ("paypal", "p\u0430ypal"), ("bob", "b0b")],
)
def test_a_look_alike_of_a_registered_name_is_refused(model, holder, look_alike):
    """Issue 24: the UTS #39 skeleton ("a1ice" -> "alice", "rnallory" = "mallory")."""
    model.open(holder, "pw")
    with pytest.raises(Refusal, match="se parece demais") as refused:
        model.open(look_alike, "other")
    assert refused.value.close_code == 4000
    assert model.online() == [holder]


def test_name_of_32_characters_is_accepted(model):
    assert model.open("a" * 32, "pw").user == "a" * 32


@pytest.mark.parametrize("secret", ["", None, 123])
def test_empty_or_non_text_secret_is_rejected_and_registers_nothing(model, secret):
    with pytest.raises(Refusal, match="senha"):
        model.open("ana", secret)
    # The name is still free: a later connect registers it with its own secret.
    model.open("ana", "real")
    with pytest.raises(AuthError):
        model.open("ana", "other")


def test_wrong_secret_raises_auth_error_and_opens_nothing(model):
    ana = model.open("ana", "right")
    model.submit(ana.id, "antes")
    with pytest.raises(AuthError, match="Senha errada"):
        model.open("ANA", "wrong")
    model.close(ana.id)
    with pytest.raises(AuthError):
        model.open("ana", "wrong", resume=(EPOCH, 0))
    assert model.online() == []
    model.open("ana", "right")  # the right secret still works
    assert model.online() == ["ana"]


def test_session_ids_are_distinct_and_sessions_are_frozen(model):
    a, b = model.open("ana", "pw"), model.open("ana", "pw")
    assert a.id != b.id and a.user == b.user == "ana"
    assert isinstance(a, Session) and a.recovered is False
    with pytest.raises(dataclasses.FrozenInstanceError):
        a.user = "bia"


def test_online_lists_users_with_at_least_one_open_session(model):
    a1, a2 = model.open("ana", "pw"), model.open("ana", "pw")
    b = model.open("bia", "pw")
    model.open("Caio", "pw")
    assert model.online() == ["ana", "bia", "caio"]
    model.close(b.id)
    model.close(a1.id)
    assert model.online() == ["ana", "caio"]
    model.close(a2.id)
    assert model.online() == ["caio"]


def test_unknown_session_raises_key_error_on_submit_and_take(model):
    s = model.open("ana", "pw")
    model.close(s.id)
    for bad in (s.id, "nope", None):
        with pytest.raises(KeyError, match="Sessão desconhecida"):
            model.take(bad)
        with pytest.raises(KeyError):
            model.submit(bad, "oi")


def test_disconnect_of_unknown_or_closed_session_does_nothing(model):
    s = model.open("ana", "pw")
    model.close(s.id)
    model.close(s.id)
    model.close("never")
    model.close(None)
    assert model.online() == []


def test_submit_rejects_non_text(model):
    s = model.open("ana", "pw")
    with pytest.raises(TypeError):
        model.submit(s.id, b"bytes")
    assert model.take(s.id) == []


def test_public_text_reaches_every_open_session_including_the_sender(model):
    a1, a2 = model.open("ana", "pw"), model.open("ana", "pw")
    j = model.open("joao", "pw")
    model.submit(a1.id, "  bom dia  ")
    expected = Message(Kind.PUBLIC, 1, "ana", None, "bom dia")
    for s in (a1, a2, j):
        assert model.take(s.id) == [expected]
    # one immutable object is shared by every queue
    model.submit(j.id, "oi")
    got = [model.take(s.id)[0] for s in (a1, a2, j)]
    assert got[0] is got[1] is got[2]
    with pytest.raises(dataclasses.FrozenInstanceError):
        got[0].text = "x"


def test_delivery_kind_serializes_as_plain_text(model):
    s = model.open("ana", "pw")
    model.submit(s.id, "oi")
    (d,) = model.take(s.id)
    assert json.loads(json.dumps(dataclasses.asdict(d))) == {
        "kind": "public",
        "offset": 1,
        "sender": "ana",
        "to": None,
        "text": "oi",
        "client_id": None,
    }


def test_offsets_start_at_one_and_grow_by_one_across_kinds(model):
    a, b = model.open("ana", "pw"), model.open("bia", "pw")
    model.submit(a.id, "um")
    model.submit(a.id, "/msg bia dois")
    model.submit(b.id, "/who")
    model.submit(b.id, "tres")
    assert [getattr(d, "offset", None) for d in model.take(b.id)] == [1, 2, None, 3]
    assert model.newest_offset == 3


def test_take_clears_the_queue_and_returns_oldest_first(model):
    a = model.open("ana", "pw")
    for word in ("um", "dois", "tres"):
        model.submit(a.id, word)
    assert texts(model.take(a.id)) == ["um", "dois", "tres"]
    assert model.take(a.id) == []


def test_closed_sessions_receive_nothing_and_new_ones_start_from_now(model):
    a = model.open("ana", "pw")
    b = model.open("bia", "pw")
    model.close(b.id)
    model.submit(a.id, "antes")
    b2 = model.open("bia", "pw")
    assert model.take(b2.id) == []
    model.submit(a.id, "depois")
    assert texts(model.take(b2.id)) == ["depois"]


def test_private_reaches_all_sessions_of_both_users_and_nobody_else(model):
    a1, a2 = model.open("ana", "pw"), model.open("ana", "pw")
    j1, j2 = model.open("joao", "pw"), model.open("joao", "pw")
    b = model.open("bia", "pw")
    model.submit(a1.id, "/msg JOAO   oi, tudo bem?")
    expected = [Message(Kind.PRIVATE, 1, "ana", "joao", "oi, tudo bem?")]
    for s in (a1, a2, j1, j2):
        assert model.take(s.id) == expected
    assert model.take(b.id) == []


def test_private_to_oneself_reaches_each_own_session_once(model):
    a1, a2 = model.open("ana", "pw"), model.open("ana", "pw")
    b = model.open("bia", "pw")
    model.submit(a2.id, "/msg ana lembrete")
    for s in (a1, a2):
        assert model.take(s.id) == [Message(Kind.PRIVATE, 1, "ana", "ana", "lembrete")]
    assert model.take(b.id) == []


def test_private_to_registered_offline_user_arrives_on_resume(model):
    j = model.open("joao", "pw")
    model.close(j.id)
    a = model.open("ana", "pw")
    model.submit(a.id, "/msg joao quando voltar, leia")
    model.submit(a.id, "/msg ana nota")  # not for joao
    assert texts(model.take(a.id)) == ["quando voltar, leia", "nota"]
    back = model.open("joao", "pw", resume=(EPOCH, 0))
    assert back.recovered is True
    assert model.take(back.id) == [Message(Kind.PRIVATE, 1, "ana", "joao", "quando voltar, leia")]


def test_who_answers_only_the_asking_session(model):
    a1, a2 = model.open("ana", "pw"), model.open("ana", "pw")
    model.open("bia", "pw")
    model.submit(a1.id, "/WHO")
    assert model.take(a1.id) == [Notice(Kind.SYSTEM, "Online agora: ana, bia.")]
    assert model.take(a2.id) == []
    assert model.newest_offset == 0


@pytest.mark.parametrize(
    ("line", "fragment"),
    [
        ("", "Mensagem vazia"),
        ("   \t ", "Mensagem vazia"),
        ("/msg", "falta o nome do destinatário"),
        ("/msg   ", "falta o nome do destinatário"),
        ("/msg bia", "falta o texto"),
        ("/msg bia    ", "falta o texto"),
        ("/msg ninguem oi", "O usuário 'ninguem' não existe"),
        ("/msg jo@o oi", "Não existe usuário chamado 'jo@o'"),
        ("/kick bia", "Comando desconhecido: /kick"),
        ("/", "Comando desconhecido"),
        ("/who bia", "não recebe argumentos"),
        ("x" * (MAX_TEXT_LENGTH + 1), "Mensagem longa demais: 2001 caracteres"),
        ("/msg bia " + "x" * (MAX_TEXT_LENGTH + 1), "longa demais"),
    ],
)
def test_bad_input_queues_one_error_to_its_origin_only_and_keeps_nothing(model, line, fragment):
    a1, a2 = model.open("ana", "pw"), model.open("ana", "pw")
    b = model.open("bia", "pw")
    model.submit(a1.id, line)
    (error,) = model.take(a1.id)
    assert isinstance(error, Notice) and error.kind == Kind.ERROR
    assert fragment in error.text
    assert model.take(a2.id) == [] and model.take(b.id) == []
    assert model.newest_offset == 0
    model.submit(b.id, "seguinte")
    assert [d.offset for d in model.take(a1.id)] == [1]


def test_text_of_exactly_the_limit_is_accepted(model):
    a = model.open("ana", "pw")
    model.submit(a.id, "x" * MAX_TEXT_LENGTH)
    assert model.take(a.id)[0].offset == 1


def _fill(model: ChatModel, n: int) -> Session:
    writer = model.open("writer", "pw")
    for i in range(1, n + 1):
        model.submit(writer.id, f"m{i}")
    model.take(writer.id)
    return writer


def test_resume_within_history_replays_exactly_what_was_missed(model):
    _fill(model, 4)
    s = model.open("ana", "pw", resume=(EPOCH, 2))
    assert s.recovered is True
    assert [(d.offset, d.text) for d in model.take(s.id)] == [(3, "m3"), (4, "m4")]


def test_resume_at_newest_offset_recovers_with_nothing_to_replay(model):
    _fill(model, 3)
    s = model.open("ana", "pw", resume=(EPOCH, 3))
    assert s.recovered is True and model.take(s.id) == []


def test_resume_then_live_messages_keep_increasing_offsets(model):
    writer = _fill(model, 3)
    s = model.open("ana", "pw", resume=(EPOCH, 1))
    model.submit(writer.id, "m4")
    assert [d.offset for d in model.take(s.id)] == [2, 3, 4]


def test_resume_beyond_retention_announces_gap_and_replays_what_is_left(model):
    _fill(model, 8)  # retention 5 keeps offsets 4..8
    s = model.open("ana", "pw", resume=(EPOCH, 1))
    assert s.recovered is False
    notice, *rest = model.take(s.id)
    assert notice.kind == Kind.SYSTEM and "perdido" in notice.text
    assert [d.offset for d in rest] == [4, 5, 6, 7, 8]


def test_resume_exactly_at_the_retention_edge_recovers(model):
    _fill(model, 8)  # 4..8 kept: offset 3 missed only kept ones
    s = model.open("ana", "pw", resume=(EPOCH, 3))
    assert s.recovered is True
    assert [d.offset for d in model.take(s.id)] == [4, 5, 6, 7, 8]


def test_resume_from_another_epoch_replays_all_visible_history():
    model = ChatModel(retention=10, epoch="new", kdf=CHEAP)
    a = model.open("ana", "pw")
    model.open("bia", "pw")
    model.submit(a.id, "publica")
    model.submit(a.id, "/msg bia segredo")
    model.submit(a.id, "/msg ana nota")
    s = model.open("bia", "pw", resume=("old", 99))
    assert s.recovered is False
    notice, *rest = model.take(s.id)
    assert notice.kind == Kind.SYSTEM and "época" in notice.text
    assert texts(rest) == ["publica", "segredo"]


def test_resume_replays_only_messages_the_user_may_see(model):
    a = model.open("ana", "pw")
    model.open("bia", "pw")
    model.open("joao", "pw")
    model.submit(a.id, "/msg bia so para bia")
    model.submit(a.id, "todos")
    s = model.open("joao", "pw", resume=(EPOCH, 0))
    assert s.recovered is True
    assert texts(model.take(s.id)) == ["todos"]


def test_resume_with_zero_retention():
    model = ChatModel(retention=0, epoch=EPOCH, kdf=CHEAP)
    s0 = model.open("ana", "pw", resume=(EPOCH, 0))
    assert s0.recovered is True
    model.submit(s0.id, "oi")
    s = model.open("ana", "pw", resume=(EPOCH, 0))
    assert s.recovered is False
    assert [d.kind for d in model.take(s.id)] == [Kind.SYSTEM]


def test_resume_offset_above_newest_is_unrecoverable_and_says_so(model):
    """A store restored from an older copy: never a clean recovery."""
    _fill(model, 2)
    s = model.open("ana", "pw", resume=(EPOCH, 3))
    assert s.recovered is False
    notice, *replay = model.take(s.id)
    assert notice.kind is Kind.SYSTEM and "além da mensagem mais nova" in notice.text
    assert [d.offset for d in replay] == [1, 2]  # the newest messages history holds


@pytest.mark.parametrize(
    "resume", [(EPOCH,), (EPOCH, -1), (EPOCH, "3"), (EPOCH, 1.0), (EPOCH, True), (1, 1), "x", 5]
)
def test_malformed_resume_is_refused(model, resume):
    with pytest.raises(Refusal, match="resume"):
        model.open("ana", "pw", resume=resume)
    assert model.online() == []


def test_resume_accepts_a_list_as_sent_by_json(model):
    _fill(model, 1)
    assert model.open("ana", "pw", resume=[EPOCH, 0]).recovered is True


def test_submit_returns_the_sessions_that_got_something(model):
    a1, a2 = model.open("ana", "pw"), model.open("ana", "pw")
    j = model.open("joao", "pw")
    b = model.open("bia", "pw")
    assert model.submit(b.id, "oi") == [a1.id, a2.id, j.id, b.id]
    assert sorted(model.submit(a2.id, "/msg joao oi")) == sorted([a1.id, a2.id, j.id])
    assert sorted(model.submit(a1.id, "/msg ana nota")) == sorted([a1.id, a2.id])
    assert model.submit(j.id, "/who") == [j.id]
    assert model.submit(j.id, "/msg ninguem oi") == [j.id]
    model.close(a2.id)
    assert sorted(model.submit(b.id, "/msg ana de novo")) == sorted([a1.id, b.id])


def test_submit_to_offline_user_names_only_the_senders_sessions(model):
    j = model.open("joao", "pw")
    model.close(j.id)
    a = model.open("ana", "pw")
    assert model.submit(a.id, "/msg joao depois") == [a.id]


# -- property tests: the model against a naive oracle ------------------------------------


# Expected item: (kind, offset, sender, to, text); text None = "any text".
Item = tuple[str, "int | None", "str | None", "str | None", "str | None"]


@dataclass
class OracleMessage:
    offset: int
    kind: str
    sender: str
    to: str | None
    text: str

    def visible_to(self, user: str) -> bool:
        return self.kind == "public" or user in (self.sender, self.to)

    def item(self) -> Item:
        return (self.kind, self.offset, self.sender, self.to, self.text)


@dataclass
class OpenSession:
    user: str
    expected: list[Item] = field(default_factory=list)
    received: list[int] = field(default_factory=list)  # offsets taken, in order
    last_seen: int = 0


def as_item(item) -> Item:
    if isinstance(item, Notice):
        return (str(item.kind), None, None, None, item.text)
    return (str(item.kind), item.offset, item.sender, item.to, item.text)


def matches(expected: Item, got: Item) -> bool:
    return expected[:4] == got[:4] and (expected[4] is None or expected[4] == got[4])


class ModelAgainstOracle(RuleBasedStateMachine):
    """Router and oracle driven side by side."""

    @initialize(retention=st.integers(min_value=0, max_value=8))
    def start(self, retention):
        self.retention = retention
        self.model = ChatModel(retention=retention, epoch=EPOCH, kdf=CHEAP)
        self.log: list[OracleMessage] = []
        self.secrets: dict[str, str] = {}
        self.sessions: dict[str, OpenSession] = {}
        self.closed: list[str] = []
        self.counter = 0
        # The faithful user: one device that drops and always resumes from what it saw.
        self.faithful_id = self._open(FAITHFUL, "fiel-pw", None)
        self.faithful_start = len(self.log)
        self.faithful_received: list[int] = []
        self.faithful_always_recovered = True

    # -- oracle helpers --------------------------------------------------------------

    def _kept_offsets(self) -> range:
        newest = len(self.log)
        return range(max(1, newest - self.retention + 1), newest + 1)

    def _open(self, user: str, secret: str, resume) -> str:
        """Connect through the model and mirror what the rules say must be queued."""
        session = self.model.open(user, secret, resume=resume)
        name = user.lower()
        assert session.user == name
        self.secrets.setdefault(name, secret)
        state = OpenSession(name, last_seen=len(self.log))
        if resume is not None:
            epoch, offset = resume
            kept = self._kept_offsets()
            if epoch == EPOCH and offset <= len(self.log):
                recovered = offset >= len(self.log) - self.retention
                wanted = [m for m in self.log if m.offset > offset and m.offset in kept]
            else:  # another epoch, or ahead of the newest (an older copy of the store)
                recovered = False
                wanted = [m for m in self.log if m.offset in kept]
            assert session.recovered is recovered
            if not recovered:
                state.expected.append(("system", None, None, None, None))
            state.expected += [m.item() for m in wanted if m.visible_to(name)]
        else:
            assert session.recovered is False
        self.sessions[session.id] = state
        return session.id

    def _take(self, sid: str) -> list[Item]:
        state = self.sessions[sid]
        got = [as_item(d) for d in self.model.take(sid)]
        assert len(got) == len(state.expected), (got, state.expected)
        for want, have in zip(state.expected, got, strict=True):
            assert matches(want, have), (want, have)
        for kind, offset, sender, to, _ in got:
            if kind == "private":  # privacy, stated on its own
                assert state.user in (sender, to)
            if offset is not None:
                assert not state.received or offset > state.received[-1]  # no repeats
                state.received.append(offset)
                state.last_seen = offset
        state.expected = []
        return got

    # -- rules -----------------------------------------------------------------------

    @rule(
        user=st.sampled_from(USERS),
        upper=st.booleans(),
        resume=st.sampled_from(["none", "zero", "newest", "random", "other-epoch"]),
        pick=st.integers(min_value=0, max_value=10_000),
        read_now=st.booleans(),
    )
    def connect(self, user, upper, resume, pick, read_now):
        newest = len(self.log)
        choice = {
            "none": None,
            "zero": (EPOCH, 0),
            "newest": (EPOCH, newest),
            "random": (EPOCH, pick % (newest + 1)),
            "other-epoch": ("older-epoch", pick),
        }[resume]
        sid = self._open(
            user.upper() if upper else user, self.secrets.get(user, f"{user}-pw"), choice
        )
        if read_now:
            self._take(sid)

    @rule(user=st.sampled_from(USERS + [FAITHFUL]), resume=st.booleans())
    def wrong_secret_opens_nothing(self, user, resume):
        if user not in self.secrets:
            return
        before = self.model.online()
        with pytest.raises(AuthError):
            self.model.open(
                user,
                "wrong-" + self.secrets[user],
                resume=(EPOCH, len(self.log)) if resume else None,
            )
        assert self.model.online() == before

    @rule(user=st.sampled_from(USERS), pick=st.integers(min_value=1, max_value=3))
    def resume_above_newest_is_never_recovered(self, user, pick):
        """A store restored from an older copy: a notice, then what history holds."""
        sid = self._open(user, self.secrets.get(user, f"{user}-pw"), (EPOCH, len(self.log) + pick))
        assert self.sessions[sid].expected[0][0] == "system"
        self._take(sid)

    @precondition(lambda self: self.sessions)
    @rule(
        data=st.data(),
        what=st.sampled_from(["public", "private", "private-self", "who", "bad"]),
        recipient=st.sampled_from(USERS + [FAITHFUL]),
        bad=st.sampled_from(["", "   ", "/msg", "/msg ana", "/nope x", "/msg zz9 oi", "x" * 2001]),
    )
    def submit(self, data, what, recipient, bad):
        sid = data.draw(st.sampled_from(sorted(self.sessions)))
        sender = self.sessions[sid].user
        self.counter += 1
        text = f"t{self.counter}"
        newest = len(self.log)
        if what == "private" and recipient not in self.secrets:
            what = "bad-recipient"
        if what == "public":
            touched = self.model.submit(sid, text)
            msg = OracleMessage(newest + 1, "public", sender, None, text)
        elif what in ("private", "private-self"):
            to = sender if what == "private-self" else recipient
            touched = self.model.submit(sid, f"/msg {to.upper()} {text}")
            msg = OracleMessage(newest + 1, "private", sender, to, text)
        elif what == "who":
            touched = self.model.submit(sid, "/who")
            online = ", ".join(sorted({s.user for s in self.sessions.values()}))
            self.sessions[sid].expected.append(
                ("system", None, None, None, f"Online agora: {online}.")
            )
            assert touched == [sid]
            return
        else:
            touched = self.model.submit(
                sid, f"/msg {recipient} {text}" if what == "bad-recipient" else bad
            )
            self.sessions[sid].expected.append(("error", None, None, None, None))
            assert self.model.newest_offset == newest  # errors change no offset
            assert touched == [sid]  # errors reach only their origin
            return
        self.log.append(msg)
        reached = []
        for other, state in self.sessions.items():
            if msg.visible_to(state.user):
                state.expected.append(msg.item())
                reached.append(other)
        assert sorted(touched) == sorted(reached)  # submit names whom it queued for, once

    @precondition(lambda self: self.sessions)
    @rule(data=st.data())
    def take(self, data):
        sid = data.draw(st.sampled_from(sorted(self.sessions)))
        got = self._take(sid)
        if sid == self.faithful_id:
            self.faithful_received += [offset for _, offset, *_ in got if offset is not None]

    @precondition(lambda self: len(self.sessions) > 1)
    @rule(data=st.data())
    def disconnect(self, data):
        sid = data.draw(st.sampled_from(sorted(s for s in self.sessions if s != self.faithful_id)))
        self.model.close(sid)
        del self.sessions[sid]
        self.closed.append(sid)

    @rule(resume_own=st.booleans())
    def drop_and_return(self, resume_own):
        """A session drops without reading its queue and comes back resuming from the
        last offset it read (a device keeps that number); sometimes a fresh tab."""
        candidates = sorted(s for s in self.sessions if s != self.faithful_id)
        if not candidates:
            return
        sid = candidates[0]
        state = self.sessions.pop(sid)
        self.model.close(sid)
        self.closed.append(sid)
        self._open(
            state.user, self.secrets[state.user], (EPOCH, state.last_seen) if resume_own else None
        )

    @rule(read_first=st.booleans())
    def faithful_drops_and_resumes(self, read_first):
        if read_first:
            self.take_faithful()
        last = self.sessions[self.faithful_id].last_seen
        self.model.close(self.faithful_id)
        del self.sessions[self.faithful_id]
        self.faithful_id = self._open(FAITHFUL, "fiel-pw", (EPOCH, last))
        recovered = last >= len(self.log) - self.retention
        self.faithful_always_recovered &= recovered

    def take_faithful(self):
        got = self._take(self.faithful_id)
        self.faithful_received += [offset for _, offset, *_ in got if offset is not None]

    @rule(sid=st.sampled_from(["s999999", "nope"]))
    def unknown_sessions(self, sid):
        with pytest.raises(KeyError):
            self.model.take(sid)
        with pytest.raises(KeyError):
            self.model.submit(sid, "oi")
        self.model.close(sid)

    @precondition(lambda self: self.closed)
    @rule()
    def closed_sessions_are_unknown(self):
        sid = self.closed[-1]
        with pytest.raises(KeyError):
            self.model.take(sid)
        self.model.close(sid)

    # -- invariants ------------------------------------------------------------------

    @invariant()
    def online_matches_open_sessions(self):
        assert self.model.online() == sorted({s.user for s in self.sessions.values()})
        assert self.model.newest_offset == len(self.log)

    @invariant()
    def faithful_user_misses_nothing_and_sees_nothing_twice(self):
        self.take_faithful()
        received = self.faithful_received
        assert len(received) == len(set(received))
        assert received == sorted(received)
        if self.faithful_always_recovered:
            visible = [
                m.offset
                for m in self.log
                if m.offset > self.faithful_start and m.visible_to(FAITHFUL)
            ]
            assert received == visible


TestChatModel = ModelAgainstOracle.TestCase


TestChatModel.settings = settings(max_examples=300, stateful_step_count=40)


@given(
    retention=st.integers(min_value=1, max_value=6),
    plan=st.lists(
        st.tuples(st.integers(min_value=0, max_value=9), st.booleans(), st.booleans()),
        min_size=1,
        max_size=30,
    ),
)
def test_resuming_from_last_seen_with_recovered_true_misses_nothing(retention, plan):
    """Sequence form of the key promise, with two devices of the same user.

    Each step: ``burst`` messages flow (public from bia, private bia->ana and
    bia->joao alternating), then one of ana's devices drops (optionally reading its
    queue first) and returns with resume=(epoch, last offset it read). For each
    device: offsets strictly increase; and if every return was recovered=True, the
    device received exactly every message visible to ana since it first connected.
    """
    model = ChatModel(retention=retention, epoch=EPOCH, kdf=CHEAP)
    bia = model.open("bia", "b")
    model.open("joao", "j")
    devices = [model.open("ana", "a").id, model.open("ana", "a").id]
    last_seen = [0, 0]
    received: list[list[int]] = [[], []]
    all_recovered = [True, True]
    visible: list[int] = []
    n = 0

    def read(i: int) -> None:
        for d in model.take(devices[i]):
            if not isinstance(d, Notice):
                assert d.kind != "private" or "ana" in (d.sender, d.to)
                received[i].append(d.offset)
                last_seen[i] = d.offset

    for burst, read_first, which in plan:
        for _ in range(burst):
            n += 1
            line = ["public", "/msg ana p", "/msg joao p"][n % 3]
            model.submit(bia.id, "pub" if line == "public" else line)
            if line != "/msg joao p":
                visible.append(n)
        i = int(which)
        if read_first:
            read(i)
        model.close(devices[i])
        session = model.open("ana", "a", resume=(EPOCH, last_seen[i]))
        devices[i] = session.id
        all_recovered[i] &= session.recovered
        assert session.recovered == (last_seen[i] >= n - retention)
    read(0)
    read(1)
    for i in (0, 1):
        assert received[i] == sorted(set(received[i]))
        if all_recovered[i]:
            assert received[i] == visible
