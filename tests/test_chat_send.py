"""ChatService.send over real connections: a group's messages coalesced per peer.

Consecutive items for the same peers go out as one ``transport.write`` per peer
(their frames back to back); the bytes, their order per connection and the
slow-reader shedding must stay what one write per message gave.
"""

import asyncio
import contextlib
import functools

import pytest
from websockets.asyncio.client import connect
from websockets.asyncio.server import serve
from websockets.exceptions import ConnectionClosedError

from wslab.chat.net import connection as chat_connection
from wslab.chat.net import service as chat_service
from wslab.chat.net.fanout import prepare_text
from wslab.chat.net.service import COALESCE_BYTES, TOO_SLOW, ChatService
from wslab.chat.node import ChatNode
from wslab.chat.rules.messages import Kind, Message, Outbound
from wslab.chat.rules.wire import encode_item
from wslab.chat.stores.memory import MemoryCredentials, MemoryLog

WAIT = 5.0


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
