"""The servers of the fan-out benchmark, each run alone in its own process.

``python -m benchmarks.fanout.servers KIND [--host H] [--port P] [--cpu C] [--loop L] [--redis URL]``
binds (port 0 picks a free one), prints ``READY <port>`` on stdout once it accepts
connections, and serves until SIGTERM or SIGINT. Every Python kind runs on the
event loop ``--loop`` names (uvloop by default where it is installed, else
asyncio's own). Every kind tells a new connection it is registered for fan-out with
a first text frame, so the load generator never sends before all receivers can get
the message:

``wslab``
    Our chat server (:mod:`wslab.chat.net`) on ``/ws``: the ``welcome`` frame
    answers the hello.
``bare``
    The transport with no application: the ``websockets`` asyncio server, each
    received text frame relayed as is, bytes in, bytes out (``recv(decode=False)``,
    ``broadcast(..., text=True)``): no UTF-8 round trip, no JSON, no routing. Its
    first frame is ``{"type": "ready"}``, sent after the connection joined the set.
``socketio``
    Socket.IO in Python: ``python-socketio`` on aiohttp. The client's
    ``connect`` (auth ``{"user": ...}``) joins one room, the ``40`` reply says so;
    each ``say`` event becomes one ``message`` event emitted to the room, with the
    same fields as our message frame (the library encodes the packet once and sends
    it to every member). With ``--redis URL`` it is one node of several: its
    ``socketio.AsyncRedisManager`` on that Redis (or Valkey) carries each emit to
    the other nodes' members of the room (``benchmarks.chat_fanout_cluster``).
``socketio-node``
    Socket.IO 4 on Node.js (``benchmarks/socketio_node/server.js``), the server
    most people pick, doing what the ``socketio`` kind does. This process pins its
    CPU, raises its file limit, then becomes ``node`` (``exec``: same PID). Its
    dependencies come from the lock file, by :func:`install_node_peer`.

``raw``
    Calibration, not a competitor: a hand-written asyncio relay that writes
    pre-framed bytes, the least Python can do per delivery, to show how much the
    load generator can absorb.

Connection logs go to stderr (ours logs each open/close); the runner keeps them out
of the terminal.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import logging
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

from . import ALL_KINDS, LOOPS, NODE_KINDS, default_loop, prepare_process

__all__ = ["install_node_peer", "serve_bare", "serve_raw", "serve_socketio", "serve_wslab", "main"]

ROOM = "chat"
MAX_FRAME_BYTES = 16 * 1024
BACKLOG = 4096  # the load generator opens its sessions in bursts (Linux caps it at somaxconn)
NODE_PEER = Path(__file__).resolve().parent.parent / "socketio_node"
NPM_TIMEOUT = 300.0


async def serve_bare(
    host: str, port: int, ready: Callable[[int], None], stop: asyncio.Event
) -> None:
    """Relay every text frame received to every open connection, untouched."""
    from websockets.asyncio.server import broadcast, serve
    from websockets.exceptions import ConnectionClosed

    clients: set = set()

    async def handler(ws) -> None:
        clients.add(ws)
        try:
            await ws.send('{"type": "ready"}')
            while True:
                data = await ws.recv(decode=False)
                broadcast(clients, data, text=True)
        except ConnectionClosed:
            pass
        finally:
            clients.discard(ws)

    async with serve(handler, host, port, max_size=MAX_FRAME_BYTES, backlog=BACKLOG) as server:
        ready(server.sockets[0].getsockname()[1])
        await stop.wait()


async def serve_socketio(
    host: str,
    port: int,
    ready: Callable[[int], None],
    stop: asyncio.Event,
    *,
    redis: str | None = None,
) -> None:
    """python-socketio (aiohttp): one room, each ``say`` emitted to it as a ``message``;
    with ``redis``, one node of several sharing that room through AsyncRedisManager."""
    import socketio
    from aiohttp import web

    manager = socketio.AsyncRedisManager(redis) if redis else None
    sio = socketio.AsyncServer(
        async_mode="aiohttp", max_http_buffer_size=MAX_FRAME_BYTES, client_manager=manager
    )
    users: dict[str, str] = {}
    offset = 0

    @sio.event
    async def connect(sid, environ, auth):
        user = auth.get("user") if isinstance(auth, dict) else None
        if not isinstance(user, str) or not user:
            return False
        users[sid] = user
        await sio.enter_room(sid, ROOM)
        return True

    @sio.event
    async def disconnect(sid, reason=None):
        users.pop(sid, None)

    @sio.on("say")
    async def say(sid, data):
        nonlocal offset
        text = data.get("text") if isinstance(data, dict) else None
        if not isinstance(text, str):
            return
        offset += 1
        message = {
            "type": "message",
            "offset": offset,
            "kind": "public",
            "from": users[sid],
            "to": None,
            "text": text,
            "replayed": False,
        }
        await sio.emit("message", message, room=ROOM)

    app = web.Application()
    sio.attach(app)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port, backlog=BACKLOG)
        await site.start()
        ready(runner.addresses[0][1])
        await stop.wait()
    finally:
        await runner.cleanup()


async def serve_wslab(
    host: str,
    port: int,
    ready: Callable[[int], None],
    stop: asyncio.Event,
    *,
    retention: int = 1000,
) -> None:
    """Our chat server as ``python -m wslab.chat serve`` runs it (logging included, the
    SQLite default in a temporary file), but with no per-user rate limit (one sender at
    full speed is the workload) and secrets hashed cheaply (the benchmark opens
    thousands of sessions; login cost is measured by benchmarks.chat_login)."""
    import tempfile

    from wslab.chat.cli import PIPELINE
    from wslab.chat.net.gate import Caps
    from wslab.chat.net.service import ChatService
    from wslab.chat.node import ChatNode, Limits
    from wslab.chat.rules.kdf import CHEAP
    from wslab.chat.stores.sqlite import SqliteStore

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    logging.getLogger("websockets").setLevel(logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="wslab-bench-") as folder:
        store = SqliteStore(f"{folder}/chat.db", retention)
        limits = Limits(max_rate=None, registrations_per_minute=None, new_names_per_minute=0)
        node = ChatNode(store.log, store.credentials, kdf=CHEAP, limits=limits)
        # Every session comes from 127.0.0.1: the per-address and per-network caps would
        # refuse them.
        caps = Caps(
            max_connections=100_000,
            max_per_address=100_000,
            max_per_network=100_000,
            max_waiting=100_000,
            max_waiting_per_address=100_000,
            max_waiting_per_network=100_000,
        )
        service = ChatService(node, pipeline=PIPELINE, max_frames=None, caps=caps)
        server = await service.serve(host, port, backlog=BACKLOG)
        try:
            ready(server.sockets[0].getsockname()[1])
            await stop.wait()
        finally:
            await service.shut_down(server)


class _RawRelay(asyncio.Protocol):
    """Calibration only: the least a Python relay can do per delivery.

    Handshake by hand, then each client frame (assumed whole, small, masked: the
    load generator's) is unmasked and the same server frame is written to every
    connection with ``transport.write``: no framing library, no per-connection
    object beyond the transport. Not a fair competitor (it checks nothing); it
    tells how many deliveries per second the load generator can absorb.
    """

    clients: set = set()

    def connection_made(self, transport) -> None:
        self.transport = transport
        self.buffer = b""
        self.upgraded = False

    def connection_lost(self, exc) -> None:
        self.clients.discard(self.transport)

    def data_received(self, data: bytes) -> None:
        from wslab.protocol import NeedData
        from wslab.protocol.frames import Frame, Opcode, apply_mask
        from wslab.protocol.handshake import accept, parse_request

        self.buffer += data
        if not self.upgraded:
            parsed = parse_request(self.buffer)
            if isinstance(parsed, NeedData):
                return
            request, used = parsed
            response = accept(request)
            if response.status != 101:
                self.transport.write(response.serialize())
                self.transport.close()
                return
            self.transport.write(
                response.serialize() + Frame(Opcode.TEXT, b'{"type": "ready"}').encode()
            )
            self.clients.add(self.transport)
            self.upgraded, self.buffer = True, self.buffer[used:]
        while len(self.buffer) >= 6:
            length = self.buffer[1] & 0x7F
            start = 2 if length < 126 else 4
            if length == 126:
                length = int.from_bytes(self.buffer[2:4], "big")
            if len(self.buffer) < start + 4 + length:
                return
            mask = self.buffer[start : start + 4]
            payload = apply_mask(self.buffer[start + 4 : start + 4 + length], mask)
            opcode = self.buffer[0] & 0x0F
            self.buffer = self.buffer[start + 4 + length :]
            if opcode == Opcode.TEXT:
                frame = Frame(Opcode.TEXT, payload).encode()
                for transport in self.clients:
                    transport.write(frame)
            elif opcode == Opcode.CLOSE:
                self.transport.close()


async def serve_raw(
    host: str, port: int, ready: Callable[[int], None], stop: asyncio.Event
) -> None:
    """Calibration relay (see :class:`_RawRelay`)."""
    server = await asyncio.get_running_loop().create_server(_RawRelay, host, port, backlog=BACKLOG)
    async with server:
        ready(server.sockets[0].getsockname()[1])
        await stop.wait()


SERVERS: dict[str, Callable[..., Awaitable[None]]] = {
    "wslab": serve_wslab,
    "bare": serve_bare,
    "socketio": serve_socketio,
    "raw": serve_raw,
}


def install_node_peer() -> str | None:
    """Make ``benchmarks/socketio_node`` ready to run: ``npm ci`` from its lock file.

    Skipped when ``node_modules`` is already newer than the lock file. Returns None
    when the peer can run, else the reason it cannot (pt-BR, for the table and
    the JSON): no ``node`` or ``npm`` on PATH, or ``npm ci`` failed.
    """
    for tool in ("node", "npm"):
        if shutil.which(tool) is None:
            return f"{tool} não está instalado (no PATH)"
    lock = NODE_PEER / "package-lock.json"
    installed = NODE_PEER / "node_modules" / ".package-lock.json"
    if installed.exists() and installed.stat().st_mtime >= lock.stat().st_mtime:
        return None
    try:
        done = subprocess.run(
            ["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"],
            cwd=NODE_PEER,
            capture_output=True,
            text=True,
            timeout=NPM_TIMEOUT,
        )
    except subprocess.TimeoutExpired:
        return f"npm ci não terminou em {NPM_TIMEOUT:g} s"
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["sem mensagem"])[-1]
        return f"npm ci falhou: {last}"
    return None


def _exec_node(host: str, port: int) -> None:
    """Replace this process by the Node.js peer (it keeps the CPU pinning and file limit)."""
    node = shutil.which("node")
    if node is None:
        raise OSError("node não está instalado (no PATH)")
    os.execv(node, [node, str(NODE_PEER / "server.js"), "--host", host, "--port", str(port)])


def _runner(loop: str) -> asyncio.Runner:
    if loop == "uvloop":
        import uvloop

        return asyncio.Runner(loop_factory=uvloop.new_event_loop)
    return asyncio.Runner()


async def _run(kind: str, host: str, port: int, retention: int, redis: str | None) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)

    def ready(bound: int) -> None:
        print(f"READY {bound}", flush=True)

    serve = SERVERS[kind]
    if kind == "wslab":
        serve = functools.partial(serve, retention=retention)
    if redis:
        serve = functools.partial(serve, redis=redis)
    await serve(host, port, ready, stop)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("kind", choices=ALL_KINDS)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--cpu", type=int, default=None, help="pin the process to this CPU")
    parser.add_argument(
        "--retention", type=int, default=1000, help="wslab: messages kept for resumes"
    )
    parser.add_argument(
        "--loop",
        choices=LOOPS,
        default=default_loop(),
        help=f"event loop of a Python server (default: {default_loop()})",
    )
    parser.add_argument(
        "--redis",
        metavar="URL",
        help="socketio: one node of several, through AsyncRedisManager on this Redis",
    )
    args = parser.parse_args(argv)
    if args.redis and args.kind != "socketio":
        parser.error(
            "--redis só vale para o socketio (os nós do wslab são python -m wslab.chat serve)"
        )
    prepare_process(args.cpu)
    try:
        if args.kind in NODE_KINDS:
            _exec_node(args.host, args.port)
        with _runner(args.loop) as runner:
            runner.run(_run(args.kind, args.host, args.port, args.retention, args.redis))
    except ImportError as exc:
        print(f"erro: o laço {args.loop} não está instalado: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(
            f"erro: o servidor {args.kind} não abriu {args.host}:{args.port}: {exc}",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
