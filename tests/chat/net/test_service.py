"""The chat service (wslab.chat.net.service) over real sockets: translation, every bad
input, drops and resumes, and the fan-out writes.

Clients are websockets' sync clients (they send no Origin header, like scripts do);
every receive is bounded, so a missing frame fails the test instead of hanging it.

``ChatService.send``: consecutive items for the same peers go out as one
``transport.write`` per peer (their frames back to back); the bytes, their order per
connection and the slow-reader shedding must stay what one write per message gave.
"""

import asyncio
import contextlib
import functools
import json

import pytest
from chatclient import (
    WAIT,
    chat_server,
    closed_with,
    hello,
    nothing_more,
    receive,
    say,
    silent_session,
)
from websockets.asyncio.client import connect
from websockets.asyncio.server import serve
from websockets.exceptions import ConnectionClosedError

import wslab.chat.net.service as service_module
from wslab.chat.net import connection as chat_connection
from wslab.chat.net import service as chat_service
from wslab.chat.net.fanout import prepare_text
from wslab.chat.net.service import COALESCE_BYTES, TOO_SLOW, ChatService
from wslab.chat.node import ChatNode
from wslab.chat.rules.messages import Kind, Message, Outbound
from wslab.chat.rules.wire import encode_item
from wslab.chat.stores.memory import MemoryCredentials, MemoryLog


def test_public_message_reaches_every_session_once(server, join):
    ana, welcome = join(server, "Ana")
    joao, _ = join(server, "joao")
    assert welcome["user"] == "ana" and welcome["epoch"] == server.epoch
    assert welcome["recovered"] is False
    say(ana, "bom dia")
    expected = {
        "type": "message",
        "offset": 1,
        "kind": "public",
        "from": "ana",
        "to": None,
        "text": "bom dia",
        "replayed": False,
    }
    assert receive(ana) == expected and receive(joao) == expected
    assert nothing_more(ana) and nothing_more(joao)


def test_private_message_reaches_every_device_of_both_users_only(server, join):
    ana_phone, _ = join(server, "ana")
    ana_laptop, _ = join(server, "ana")
    joao, _ = join(server, "joao")
    bia, _ = join(server, "bia")
    say(joao, "/msg ana oi")
    for ws in (ana_phone, ana_laptop, joao):
        frame = receive(ws)
        assert (frame["kind"], frame["from"], frame["to"], frame["text"]) == (
            "private",
            "joao",
            "ana",
            "oi",
        )
    assert nothing_more(bia)


def test_who_and_command_errors_answer_only_the_asking_session(server, join):
    ana, _ = join(server, "ana")
    joao, _ = join(server, "joao")
    say(ana, "/who")
    assert receive(ana) == {"type": "system", "text": "Online agora: ana, joao."}
    say(ana, "/msg ninguem oi")
    error = receive(ana)
    assert error["type"] == "error" and "ninguem" in error["text"]
    assert nothing_more(joao)


def test_a_public_message_is_serialized_once_for_all_recipients(server, monkeypatch, join):
    calls = []
    real = service_module.encode_item

    def counting(delivery, **options):
        calls.append(delivery.offset)
        return real(delivery, **options)

    monkeypatch.setattr(service_module, "encode_item", counting)
    clients = [join(server, f"u{i}")[0] for i in range(5)]
    say(clients[0], "para todos")
    assert all(receive(ws)["text"] == "para todos" for ws in clients)
    assert calls == [1]


def test_wrong_secret_closes_with_4001_and_disturbs_no_one(server, join, opened):
    ana, _ = join(server, "ana", "certo")
    intruder = opened(server.ws_url)
    intruder.send(json.dumps({"type": "hello", "user": "ana", "secret": "errado"}))
    code, reason = closed_with(intruder)
    assert code == 4001 and "Senha errada" in reason
    say(ana, "ainda aqui")
    assert receive(ana)["text"] == "ainda aqui"
    assert server.session_ids() == ["s1"]


@pytest.mark.parametrize(
    "first",
    [
        "isto não é JSON",
        b"\x00\x01binary",
        '{"type": "say", "text": "oi"}',
        '{"type": "hello", "user": "ana"}',
        '{"type": "hello", "user": "nome com espaço", "secret": "s"}',
        '{"type": "hello", "user": "ana", "secret": ""}',
    ],
)
def test_a_first_frame_that_is_not_a_valid_hello_closes_with_4000(server, first, opened):
    ws = opened(server.ws_url)
    ws.send(first)
    code, reason = closed_with(ws)
    assert code == 4000 and reason
    assert server.session_ids() == []


def test_resume_beyond_the_newest_offset_is_unrecoverable_and_says_so(server, join):
    """A store restored from an older copy: never a clean recovery."""
    _, welcome = join(server, "ana", resume={"epoch": server.epoch, "offset": 99})
    assert welcome["recovered"] is False


def test_a_silent_client_is_closed_with_4000_after_the_hello_timeout(opened):
    with chat_server(hello_timeout=0.3) as server:
        ws = opened(server.ws_url)
        code, reason = closed_with(ws)
        assert code == 4000 and "hello" in reason


@pytest.mark.parametrize(
    "frame, words",
    [
        ("{malformed", "JSON inválido"),
        ('{"type": "dance"}', "desconhecido"),
        (b"\x89binary", "binário"),
        ('{"type": "say", "text": null}', "text"),
    ],
)
def test_bad_frames_after_hello_get_an_error_and_the_connection_stays(server, frame, words, join):
    ana, _ = join(server, "ana")
    ana.send(frame)
    error = receive(ana)
    assert error["type"] == "error" and words in error["text"]
    say(ana, "continuo conectada")
    assert receive(ana)["text"] == "continuo conectada"


def test_a_frame_over_16_kib_closes_with_1009_and_others_carry_on(server, join):
    ana, _ = join(server, "ana")
    joao, _ = join(server, "joao")
    say(ana, "x" * (16 * 1024))
    code, _ = closed_with(ana)
    assert code == 1009
    say(joao, "sigo aqui")
    assert receive(joao)["text"] == "sigo aqui"


def test_a_dropped_session_resumes_with_what_it_missed_each_once(server, join):
    ana_phone, first = join(server, "ana")
    ana_laptop, _ = join(server, "ana")
    joao, _ = join(server, "joao")
    say(joao, "antes")
    last_seen = receive(ana_phone)["offset"]
    receive(ana_laptop), receive(joao)
    server.drop(first["session"])
    say(joao, "durante 1")
    say(joao, "/msg ana durante 2")
    assert [receive(ana_laptop)["text"] for _ in range(2)] == ["durante 1", "durante 2"]
    ana_phone, welcome = join(server, "ana", resume={"epoch": first["epoch"], "offset": last_seen})
    assert welcome["recovered"] is True and welcome["session"] != first["session"]
    replay = [receive(ana_phone) for _ in range(2)]
    assert [(f["offset"], f["text"], f["replayed"]) for f in replay] == [
        (last_seen + 1, "durante 1", True),
        (last_seen + 2, "durante 2", True),
    ]
    say(joao, "depois")
    assert receive(ana_phone) | {"replayed": None} == receive(ana_laptop) | {"replayed": None}
    assert nothing_more(ana_phone)


def test_every_answer_to_a_line_carries_its_id(server, join):
    """The echo and every copy of the message (a replay too), /who's reply, an error;
    a line without an id gets frames without one."""
    ana, welcome = join(server, "ana")
    joao, _ = join(server, "joao")
    say(ana, "oi", "k1")
    assert receive(ana)["id"] == receive(joao)["id"] == "k1"
    say(ana, "/who", "k2")
    assert receive(ana) == {"type": "system", "text": "Online agora: ana, joao.", "id": "k2"}
    say(ana, "/msg ninguem oi", "k3")
    error = receive(ana)
    assert (error["type"], error["id"]) == ("error", "k3")
    say(ana, "sem id")
    assert "id" not in receive(ana) and "id" not in receive(joao)
    again, _ = join(server, "ana", resume={"epoch": welcome["epoch"], "offset": 0})
    assert [receive(again).get("id") for _ in range(2)] == ["k1", None]
    assert nothing_more(joao)


def test_a_line_sent_again_after_a_drop_is_delivered_once(server, join):
    """The client lost its connection before the echo and sends the line again, with
    its id, on its next session: the replay holds the first copy, and nobody gets a
    second."""
    ana, first = join(server, "ana")
    joao, _ = join(server, "joao")
    say(ana, "só uma vez", "k1")
    assert receive(joao)["offset"] == 1
    server.drop(first["session"])
    ana, _ = join(server, "ana", resume={"epoch": first["epoch"], "offset": 0})
    say(ana, "só uma vez", "k1")
    replayed, answer = sorted((receive(ana), receive(ana)), key=lambda f: f["type"])
    assert (replayed["offset"], replayed["id"], replayed["replayed"]) == (1, "k1", True)
    # The line is answered too (a session that resumed past its first copy, or across
    # a gap, would get no echo): a notice with its id.
    assert (answer["type"], answer["id"]) == ("system", "k1") and "já estava" in answer["text"]
    say(joao, "depois")
    assert receive(ana)["offset"] == receive(joao)["offset"] == 2
    assert nothing_more(ana) and nothing_more(joao)


def test_an_id_given_to_another_line_gets_an_error_and_stores_nothing(server, join):
    ana, _ = join(server, "ana")
    joao, _ = join(server, "joao")
    say(ana, "oi", "k1")
    assert receive(ana)["offset"] == receive(joao)["offset"] == 1
    say(ana, "outra coisa", "k1")
    refused = receive(ana)
    assert (refused["type"], refused["id"]) == ("error", "k1") and "id novo" in refused["text"]
    say(ana, "outra coisa", "k2")
    assert receive(joao)["offset"] == 2
    assert nothing_more(joao)


def test_a_refused_line_over_the_rate_carries_its_id(opened):
    with chat_server(max_rate=1.0, burst=1) as server:
        ana = opened(server.ws_url)
        hello(ana, "ana")
        say(ana, "um", "k1")
        say(ana, "dois", "k2")
        assert receive(ana)["id"] == "k1"
        refused = receive(ana)
        assert (refused["type"], refused["id"]) == ("error", "k2") and "Devagar" in refused["text"]


def test_a_session_over_the_rate_limit_is_told_and_its_extra_line_not_sent(opened):
    with chat_server(max_rate=1.0, burst=3) as server:
        ana = opened(server.ws_url)
        joao = opened(server.ws_url)
        hello(ana, "ana"), hello(joao, "joao")
        for i in range(4):
            say(ana, f"linha {i}")
        frames = [receive(ana) for _ in range(4)]
        assert [f.get("text") for f in frames[:3]] == ["linha 0", "linha 1", "linha 2"]
        assert frames[3]["type"] == "error" and "Devagar" in frames[3]["text"]
        assert [receive(joao)["text"] for _ in range(3)] == ["linha 0", "linha 1", "linha 2"]
        assert nothing_more(joao)


def test_a_client_too_slow_to_read_is_shed_and_the_others_get_everything(join):
    with chat_server(max_pending=64 * 1024, max_rate=None) as server:
        slow = silent_session(server, "lenta", rcvbuf=4096)
        ana, _ = join(server, "ana")
        text = "y" * 2000
        sent = 0
        while "s1" in server.session_ids() and sent < 5000:
            say(ana, text)
            assert receive(ana)["offset"] == sent + 1
            sent += 1
        assert server.session_ids() == ["s2"], f"ainda aberta após {sent} mensagens"
        say(ana, "depois")
        assert receive(ana)["text"] == "depois"
        slow.close()


def test_the_welcome_lists_the_nodes_only_in_a_cluster(opened):
    with chat_server(other_nodes=["http://127.0.0.1:8766"]) as server:
        ws = opened(server.ws_url)
        welcome = hello(ws, "ana")
        assert welcome["nodes"] == [server.ws_url, "ws://127.0.0.1:8766/ws"]
        peer_page = opened(server.ws_url, origin="http://127.0.0.1:8766")
        assert hello(peer_page, "bia")["type"] == "welcome"
    with chat_server() as alone:
        assert "nodes" not in hello(opened(alone.ws_url), "ana")


# -- send: a group's messages coalesced per peer -----------------------------------------


class Peer:
    """What the hub holds for a session: here only its connection."""

    def __init__(self, connection) -> None:
        self.connection = connection


def public(offset: int, text: str) -> Message:
    return Message(Kind.PUBLIC, offset, "ana", None, text)


def private(offset: int, text: str) -> Message:
    return Message(Kind.PRIVATE, offset, "ana", "bia", text)


def run(scenario):
    async def bounded():
        async with asyncio.timeout(WAIT):
            return await scenario()

    return asyncio.run(bounded())


@contextlib.asynccontextmanager
async def peers(chat: ChatService, count: int):
    """``count`` websockets clients and, for each, the server connection (the chat's
    own connection class, with no session) as a peer; plus a record of every
    transport.write per server connection."""
    accepted: asyncio.Queue = asyncio.Queue()

    async def handler(connection):
        await accepted.put(connection)
        await connection.wait_closed()

    async with serve(
        handler,
        "127.0.0.1",
        0,
        compression=None,
        ping_interval=None,
        create_connection=functools.partial(chat_connection.Connection, service=chat),
    ) as ws:
        url = f"ws://127.0.0.1:{ws.sockets[0].getsockname()[1]}/"
        clients = [await connect(url, compression=None, ping_interval=None) for _ in range(count)]
        connections = [await accepted.get() for _ in clients]
        writes: dict = {}
        for connection in connections:
            log = writes[connection] = []
            write = connection.transport.write

            def recording(data, write=write, log=log):
                log.append(bytes(data))
                write(data)

            connection.transport.write = recording
        try:
            yield clients, [Peer(c) for c in connections], writes
        finally:
            for client in clients:
                await client.close()


def service() -> ChatService:
    return ChatService(ChatNode(MemoryLog(100), MemoryCredentials()))


def frame(delivery: Message) -> bytes:
    return prepare_text(encode_item(delivery)).frames


def test_a_groups_messages_go_in_one_write_per_peer_in_order():
    async def scenario():
        chat = service()
        async with peers(chat, 2) as (clients, (a, b), writes):
            everyone, pair = (a, b), (a,)
            group = [public(1, "um"), public(2, "dois"), private(3, "só a"), public(4, "quatro")]
            items = [
                Outbound(group[0], everyone),
                Outbound(group[1], everyone),  # the same snapshot: joined with the first
                Outbound(group[2], pair),
                Outbound(group[3], everyone),
            ]
            chat.send(items)
            got_a = [await clients[0].recv() for _ in range(4)]
            got_b = [await clients[1].recv() for _ in range(3)]
            return group, got_a, got_b, list(writes[a.connection]), list(writes[b.connection])

    group, got_a, got_b, writes_a, writes_b = run(scenario)
    assert got_a == [encode_item(m) for m in group]
    assert got_b == [encode_item(m) for m in group if m.kind is Kind.PUBLIC]
    joined = frame(group[0]) + frame(group[1])
    assert writes_a == [joined, frame(group[2]), frame(group[3])]
    assert writes_b == [joined, frame(group[3])]


def test_a_run_is_cut_at_coalesce_bytes():
    text = "x" * (COALESCE_BYTES // 3)
    group = [public(i, text) for i in range(1, 6)]

    async def scenario():
        chat = service()
        async with peers(chat, 1) as (clients, (a,), writes):
            everyone = (a,)
            chat.send([Outbound(m, everyone) for m in group])
            received = [await clients[0].recv() for _ in group]
            return received, list(writes[a.connection])

    received, written = run(scenario)
    assert received == [encode_item(m) for m in group]
    assert all(len(w) <= COALESCE_BYTES for w in written)
    assert b"".join(written) == b"".join(frame(m) for m in group)
    assert len(written) == 3  # two, two, one: each run as long as the limit allows


def test_a_slow_peer_is_shed_and_the_others_get_the_whole_group():
    async def scenario():
        chat = service()
        async with peers(chat, 3) as (clients, all_peers, writes):
            slow = all_peers[1].connection
            real = slow.transport.get_write_buffer_size
            # as if its reader had stalled, at the moment of the send only
            slow.transport.get_write_buffer_size = lambda: chat_service.MAX_PENDING_BYTES + 1
            group = [public(1, "um"), public(2, "dois")]
            chat.send([Outbound(m, tuple(all_peers)) for m in group])
            slow.transport.get_write_buffer_size = real
            fast = [[await c.recv(), await c.recv()] for c in (clients[0], clients[2])]
            with pytest.raises(ConnectionClosedError):
                await clients[1].recv()
            return group, fast, list(writes[slow]), clients[1].close_code, clients[1].close_reason

    group, fast, slow_writes, code, reason = run(scenario)
    assert fast == [[encode_item(m) for m in group]] * 2
    assert all(b'"offset"' not in w for w in slow_writes)  # none of the group reached it
    assert (code, reason) == (1013, TOO_SLOW)
