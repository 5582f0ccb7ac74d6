"""Prepared frames (wslab.chat.net.fanout) over real sockets, against websockets' own path.

Each test runs a websockets server on loopback; its handler hands the test the
server side of every connection. Byte identity is read by a raw TCP client; the
rest (messages, ping/pong, closing) by websockets' own client.
"""

import asyncio
import contextlib
import logging

import pytest
from chatclient import WAIT, run
from websockets.asyncio.client import connect
from websockets.asyncio.server import broadcast, serve
from websockets.exceptions import ConnectionClosedOK
from websockets.protocol import State

from wslab.chat.net.fanout import PreparedText, join, prepare_text, write_prepared
from wslab.protocol import NeedData
from wslab.protocol.handshake import build_request, check_response, generate_key, parse_response

TEXTS = {
    "empty": "",
    "125 (7-bit length)": "a" * 125,
    "126 (16-bit length)": "b" * 126,
    "65535 (16-bit, largest)": "c" * 65535,
    "65536 (64-bit length)": "d" * 65536,
    "non-ASCII": "Olá mundo! ação, coração ✓ 🎉",
}


@contextlib.asynccontextmanager
async def server(**options):
    """A websockets server on loopback; yields (its ws:// URL, a queue of server connections)."""
    accepted: asyncio.Queue = asyncio.Queue()

    async def handler(connection):
        await accepted.put(connection)
        await connection.wait_closed()

    async with serve(handler, "127.0.0.1", 0, compression=None, **options) as ws_server:
        port = ws_server.sockets[0].getsockname()[1]
        yield f"ws://127.0.0.1:{port}/", accepted


async def raw_client(url):
    """A TCP client that does the opening handshake and then reads raw bytes."""
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", int(url.rsplit(":", 1)[1].strip("/"))
    )
    key = generate_key()
    writer.write(build_request(url, key))
    data = await reader.read(4096)
    while isinstance(parsed := parse_response(data), NeedData):
        data += await reader.read(4096)
    response, used = parsed
    check_response(response, key)
    return reader, writer, data[used:]


async def read_exactly(reader, leftover, size):
    data = leftover
    while len(data) < size:
        data += await reader.read(size - len(data))
    return data


def test_prepared_frame_is_a_server_text_frame():
    prepared = prepare_text("oi")
    assert prepared == PreparedText((b"oi",), b"\x81\x02oi")
    assert prepare_text("x" * 126).frames[:4] == b"\x81\x7e\x00\x7e"
    assert prepare_text("x" * 65536).frames[:10] == b"\x81\x7f" + (65536).to_bytes(8, "big")


@pytest.mark.parametrize("text", TEXTS.values(), ids=TEXTS.keys())
def test_bytes_written_equal_the_librarys_own(text):
    async def scenario():
        async with server() as (url, accepted):
            reader, writer, leftover = await raw_client(url)
            connection = await accepted.get()
            prepared = prepare_text(text)
            assert write_prepared([connection], prepared) == 1
            broadcast([connection], text)  # websockets' own serialization, right behind
            both = await read_exactly(reader, leftover, 2 * len(prepared.frames))
            writer.close()
            return prepared.frames, both

    frame, both = run(scenario())
    assert both == frame + frame


def test_a_client_receives_them_as_messages_then_ping_pong_and_close_work():
    async def scenario():
        async with (
            server(ping_interval=None) as (url, accepted),
            connect(url, compression=None, ping_interval=None) as client,
        ):
            connection = await accepted.get()
            texts = list(TEXTS.values())
            for text in texts:
                assert write_prepared([connection], prepare_text(text)) == 1
            received = [await client.recv() for _ in texts]
            await asyncio.wait_for(await client.ping(b"from client"), WAIT)
            await asyncio.wait_for(await connection.ping(b"from server"), WAIT)
            await client.send("and back")
            echoed = await connection.recv()
            await connection.close(1000, "tchau")
            with pytest.raises(ConnectionClosedOK):
                await client.recv()
            return (
                texts,
                received,
                echoed,
                client.close_code,
                client.close_reason,
                connection.close_code,
            )

    texts, received, echoed, code, reason, server_code = run(scenario())
    assert received == texts
    assert echoed == "and back"
    assert (code, reason, server_code) == (1000, "tchau", 1000)


def test_the_client_may_close_after_prepared_frames():
    async def scenario():
        async with server(ping_interval=None) as (url, accepted):
            client = await connect(url, compression=None, ping_interval=None)
            connection = await accepted.get()
            write_prepared([connection], prepare_text("antes de sair"))
            assert await client.recv() == "antes de sair"
            await client.close(1001, "indo embora")
            await connection.wait_closed()
            return connection.close_code, connection.close_reason

    assert run(scenario()) == (1001, "indo embora")


def test_many_connections_get_the_same_message():
    async def scenario():
        async with server(ping_interval=None) as (url, accepted):
            clients = [await connect(url, compression=None, ping_interval=None) for _ in range(5)]
            connections = [await accepted.get() for _ in clients]
            count = write_prepared(connections, prepare_text("para todos"))
            received = [await c.recv() for c in clients]
            for c in clients:
                await c.close()
            return count, received

    count, received = run(scenario())
    assert count == 5 and received == ["para todos"] * 5


@pytest.mark.parametrize(
    "texts", [["comprimida " * 20], ["um " * 20, "dois " * 20]], ids=["one", "joined"]
)
def test_a_connection_with_permessage_deflate_gets_the_library_path(texts):
    async def scenario():
        accepted: asyncio.Queue = asyncio.Queue()

        async def handler(connection):
            await accepted.put(connection)
            await connection.wait_closed()

        async with serve(
            handler, "127.0.0.1", 0, compression="deflate", ping_interval=None
        ) as ws_server:
            port = ws_server.sockets[0].getsockname()[1]
            async with connect(f"ws://127.0.0.1:{port}/", compression="deflate") as client:
                connection = await accepted.get()
                assert connection.protocol.extensions  # permessage-deflate was negotiated
                count = write_prepared([connection], join([prepare_text(t) for t in texts]))
                return count, [await client.recv() for _ in texts]

    count, received = run(scenario())
    assert count == 0 and received == texts


def test_a_closing_connection_gets_nothing():
    async def scenario():
        async with server(ping_interval=None) as (url, accepted):
            reader, writer, leftover = await raw_client(url)
            connection = await accepted.get()
            closing = asyncio.ensure_future(connection.close(1000, "fim"))
            while connection.state is not State.CLOSING:  # the close frame is written
                await asyncio.sleep(0)
            count = write_prepared([connection], prepare_text("tarde demais"))
            data = leftover
            while len(data) < 2 or len(data) < 2 + data[1]:
                data += await reader.read(4096)
            with contextlib.suppress(TimeoutError):  # nothing may follow the close frame
                data += await asyncio.wait_for(reader.read(4096), 0.2)
            writer.close()
            closing.cancel()
            return count, data

    count, data = run(scenario())
    assert count == 0
    assert data == b"\x88\x05" + (1000).to_bytes(2, "big") + b"fim"


def test_a_connection_sending_fragments_is_skipped_with_broadcasts_warning(caplog):
    async def scenario():
        async with (
            server(ping_interval=None) as (url, accepted),
            connect(url, compression=None, ping_interval=None) as client,
        ):
            connection = await accepted.get()
            release = asyncio.Event()

            async def fragments():
                yield "primeira parte, "
                await release.wait()
                yield "segunda parte"

            sending = asyncio.ensure_future(connection.send(fragments()))
            while connection.send_in_progress is None:
                await asyncio.sleep(0)
            count = write_prepared([connection], prepare_text("no meio"))
            release.set()
            await sending
            write_prepared([connection], prepare_text("depois"))
            return count, await client.recv(), await client.recv()

    with caplog.at_level(logging.WARNING):
        count, first, second = run(scenario())
    assert count == 0
    assert (first, second) == ("primeira parte, segunda parte", "depois")
    assert "skipped broadcast: sending a fragmented message" in caplog.text


def test_joined_messages_are_the_librarys_frames_back_to_back_in_order():
    texts = list(TEXTS.values())
    joined = join([prepare_text(text) for text in texts])
    assert joined.payloads == tuple(text.encode() for text in texts)
    assert join([prepare_text("só")]) == prepare_text("só")

    async def scenario():
        async with server() as (url, accepted):
            reader, writer, leftover = await raw_client(url)
            connection = await accepted.get()
            writes = []
            write = connection.transport.write
            connection.transport.write = lambda data: (writes.append(data), write(data))
            assert write_prepared([connection], joined) == 1
            connection.transport.write = write
            for text in texts:
                broadcast([connection], text)  # websockets' own frames, one by one
            data = await read_exactly(reader, leftover, 2 * len(joined.frames))
            writer.close()
            return writes, data

    writes, data = run(scenario())
    assert writes == [joined.frames]  # one write for the lot
    assert data == joined.frames + joined.frames


def test_a_client_receives_joined_messages_one_by_one_then_ping_pong_and_close_work():
    async def scenario():
        async with (
            server(ping_interval=None) as (url, accepted),
            connect(url, compression=None, ping_interval=None) as client,
        ):
            connection = await accepted.get()
            first = [f"primeira {i}" for i in range(3)]
            second = [f"segunda {i}" for i in range(4)]
            write_prepared([connection], join([prepare_text(t) for t in first]))
            write_prepared([connection], join([prepare_text(t) for t in second]))
            received = [await client.recv() for _ in first + second]
            await asyncio.wait_for(await client.ping(b"from client"), WAIT)
            await asyncio.wait_for(await connection.ping(b"from server"), WAIT)
            await connection.close(1000, "tchau")
            with pytest.raises(ConnectionClosedOK):
                await client.recv()
            return first + second, received, client.close_code

    sent, received, code = run(scenario())
    assert received == sent and code == 1000


def test_a_connection_over_the_limit_is_handed_over_and_gets_nothing():
    async def scenario():
        async with server(ping_interval=None) as (url, accepted):
            clients = [await connect(url, compression=None, ping_interval=None) for _ in range(3)]
            connections = [await accepted.get() for _ in clients]
            slow = connections[1]
            real = slow.transport.get_write_buffer_size
            slow.transport.get_write_buffer_size = lambda: 1 << 20  # as if its reader stalled
            over = []
            count = write_prepared(
                connections,
                join([prepare_text("a"), prepare_text("b")]),
                limit=1000,
                over=over.append,
            )
            slow.transport.get_write_buffer_size = real
            fast = [[await c.recv(), await c.recv()] for c in (clients[0], clients[2])]
            with contextlib.suppress(TimeoutError):  # the slow one got nothing
                await asyncio.wait_for(clients[1].recv(), 0.2)
                raise AssertionError("the connection over the limit received a message")
            for c in clients:
                await c.close()
            return count, over == [slow], fast

    count, handed_over, fast = run(scenario())
    assert count == 2 and handed_over and fast == [["a", "b"], ["a", "b"]]


def test_a_limit_without_a_callback_is_refused():
    with pytest.raises(TypeError, match="over"):
        write_prepared([], prepare_text("x"), limit=10)
