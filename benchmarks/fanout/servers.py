"""The three servers of the fan-out benchmark, each run alone in its own process.

``python -m benchmarks.fanout.servers KIND [--host H] [--port P] [--cpu C]`` binds
(port 0 picks a free one), prints ``READY <port>`` on stdout once it accepts
connections, and serves until SIGTERM or SIGINT. Every kind tells a new connection
it is registered for fan-out with a first text frame, so the load generator never
sends before all receivers can get the message:

``wslab``
    Our chat server (:mod:`wslab.chat.server`) on ``/ws``: the ``welcome`` frame
    answers the hello.
``bare``
    The ceiling of the transport in Python: the ``websockets`` asyncio server, each
    received text frame relayed as is, bytes in, bytes out (``recv(decode=False)``,
    ``broadcast(..., text=True)``): no UTF-8 round trip, no JSON, no routing. Its
    first frame is ``{"type": "ready"}``, sent after the connection joined the set.
``socketio``
    What most people would pick: ``python-socketio`` on aiohttp. The client's
    ``connect`` (auth ``{"user": ...}``) joins one room, the ``40`` reply says so;
    each ``say`` event becomes one ``message`` event emitted to the room, with the
    same fields as our message frame (the library encodes the packet once and sends
    it to every member).

Connection logs go to stderr (ours logs each open/close); the runner keeps them out
of the terminal.
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import logging
import signal
import sys
from collections.abc import Awaitable, Callable, Sequence

from . import SERVER_KINDS, prepare_process

__all__ = ["serve_bare", "serve_socketio", "serve_wslab", "main"]

ROOM = "chat"
MAX_FRAME_BYTES = 16 * 1024
BACKLOG = 1024  # the load generator opens its sessions in bursts


async def serve_bare(host: str, port: int, ready: Callable[[int], None], stop: asyncio.Event) -> None:
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


async def serve_socketio(host: str, port: int, ready: Callable[[int], None], stop: asyncio.Event) -> None:
    """python-socketio (aiohttp): one room, each ``say`` emitted to it as a ``message``."""
    import socketio
    from aiohttp import web

    sio = socketio.AsyncServer(async_mode="aiohttp", max_http_buffer_size=MAX_FRAME_BYTES)
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
        message = {"type": "message", "offset": offset, "kind": "public", "from": users[sid],
                   "to": None, "text": text, "replayed": False}
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


async def serve_wslab(host: str, port: int, ready: Callable[[int], None], stop: asyncio.Event,
                      *, retention: int = 1000) -> None:
    """Our chat server as ``python -m wslab.chat serve`` runs it (logging included)."""
    from wslab.chat.router import ChatRouter
    from wslab.chat.server import ChatService

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    logging.getLogger("websockets").setLevel(logging.WARNING)
    server = await ChatService(ChatRouter(retention)).serve(host, port, backlog=BACKLOG)
    try:
        ready(server.sockets[0].getsockname()[1])
        await stop.wait()
    finally:
        server.close()
        await server.wait_closed()


SERVERS: dict[str, Callable[..., Awaitable[None]]] = {
    "wslab": serve_wslab,
    "bare": serve_bare,
    "socketio": serve_socketio,
}


async def _run(kind: str, host: str, port: int, retention: int) -> None:
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
    await serve(host, port, ready, stop)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("kind", choices=SERVER_KINDS)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--cpu", type=int, default=None, help="pin the process to this CPU")
    parser.add_argument("--retention", type=int, default=1000, help="wslab: messages kept for resumes")
    args = parser.parse_args(argv)
    prepare_process(args.cpu)
    try:
        asyncio.run(_run(args.kind, args.host, args.port, args.retention))
    except OSError as exc:
        print(f"erro: o servidor {args.kind} não abriu {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
