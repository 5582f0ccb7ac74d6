"""The chat on the network: a websockets (asyncio) server around :class:`ChatRouter`.

The server owns no routing logic. It turns frames into router calls
(:mod:`wslab.chat.wire` parses them) and the router's deliveries into frames; a
public message is serialized once and written to all its recipients with
:func:`websockets.asyncio.server.broadcast` (compression is off, so every recipient
gets the very same bytes).

HTTP (:mod:`wslab.chat.web`): ``/`` and the other files of ``wslab/chat/static`` are
the browser client; ``/ws`` is the WebSocket endpoint, refused with 403 when the
``Host`` header does not name this server (DNS rebinding) or an ``Origin`` header is
present and is not this server's own (cross-site WebSocket hijacking).

One bad client never disturbs the others:

- an invalid first frame closes that connection with 4000, a wrong secret with 4001,
  and a hello that does not come within ``hello_timeout`` seconds with 4000;
- after the hello, malformed JSON, an unknown type or a binary frame get an error frame
  and the connection stays up; a frame above 16 KiB closes with 1009 (websockets'
  ``max_size``);
- a session may send ``max_rate`` lines per second on average (bursts of ``burst``);
  a line above that gets an error frame and is not sent, so one client cannot flood
  the others' connections;
- keepalive pings find dead peers; a client that does not read, so that more than
  ``max_pending`` bytes wait in its write buffer, is closed with 1013 and its session
  ended: it can reconnect and resume from its last offset, without anything lost;
- every closing handshake, whoever starts it, ends within ``close_timeout``: after
  that the TCP connection is cut (see :func:`close_within`).

Not bounded here: how many connections are open at once (each waits at most 10 s for
its handshake and ``hello_timeout`` for its hello) and how many names get registered;
a deployment limits those in front of the server.

Every connection is served on one event loop and each router call runs to completion
between two awaits, so the router needs no locks. ``python -m wslab.chat serve`` runs
it from the command line; :class:`ChatServer` runs it in a background thread, for
tests and notebooks.
"""
from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Collection
from http import HTTPStatus

from websockets.asyncio.server import Server, ServerConnection, broadcast, serve
from websockets.exceptions import ConnectionClosed
from websockets.frames import CloseCode
from websockets.http11 import Request, Response
from websockets.protocol import State

from .credentials import AuthError
from .delivery import Delivery
from .ratelimit import TokenBucket
from .router import ChatRouter
from .web import StaticFiles, handshake_refusal
from .wire import (
    MAX_FRAME_BYTES,
    BadFrame,
    BadHello,
    ChatCloseCode,
    encode_delivery,
    encode_error,
    encode_welcome,
    parse_frame,
    parse_hello,
)

__all__ = ["ChatServer", "ChatService", "WS_PATH"]

WS_PATH = "/ws"
HELLO_TIMEOUT = 10.0
CLOSE_TIMEOUT = 10.0  # websockets' default
MAX_PENDING_BYTES = 1 << 20
MAX_RATE = 20.0  # lines per second a session may send, on average
BURST = 40  # ... and at once

logger = logging.getLogger("wslab.chat.server")


def _close_reason(text: str) -> str:
    """A close reason fits in 123 UTF-8 bytes (RFC 6455 §5.5); cut on a character."""
    return text.encode()[:123].decode(errors="ignore")


async def close_within(
    connection: ServerConnection, code: int = CloseCode.NORMAL_CLOSURE, reason: str = ""
) -> None:
    """Close ``connection``, cutting TCP if that takes longer than its ``close_timeout``.

    websockets' ``close()`` first waits for the write buffer to drain, with no bound:
    a peer that stopped reading would hold it (and its socket) forever.
    """
    try:
        async with asyncio.timeout(connection.close_timeout or CLOSE_TIMEOUT):
            await connection.close(code, reason)
    except TimeoutError:
        connection.transport.abort()


class _BoundedClosing(ServerConnection):
    """A server connection whose closing is bounded in every case.

    When data from the peer moves the connection to CLOSING (its close frame, or a
    frame that fails the connection, like one over ``max_size``: 1009), websockets
    sends the close frame and then waits for the peer to end TCP; it enforces
    ``close_timeout`` only while some coroutine awaits the connection, and the
    handler's ``recv`` does not. A peer that then neither reads nor closes would keep
    its session open. Here a bounded close starts at that moment.
    """

    _closing: asyncio.Task | None = None

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self._closing is None and self.protocol.state is State.CLOSING:
            self._closing = self.loop.create_task(close_within(self))


def _peer(connection: ServerConnection) -> str:
    address = connection.remote_address
    return f"{address[0]}:{address[1]}" if address else "?"


class ChatService:
    """Serves one :class:`ChatRouter` over WebSocket connections on one event loop.

    Args:
        router: the routing model; the service only calls it.
        hello_timeout: seconds a new connection has to send its hello.
        max_pending: bytes a connection may leave unread in its write buffer before
            it is closed with 1013 as too slow.
        max_rate, burst: lines per second a session may send on average, and at
            once; ``max_rate=None`` lifts the limit (the fan-out benchmark does).
        allowed_hosts: names, besides ``localhost`` and the server's addresses, that
            the ``Host`` header of a ``/ws`` request may carry.
    """

    def __init__(
        self,
        router: ChatRouter,
        *,
        hello_timeout: float = HELLO_TIMEOUT,
        max_pending: int = MAX_PENDING_BYTES,
        max_rate: float | None = MAX_RATE,
        burst: int = BURST,
        allowed_hosts: Collection[str] = (),
    ) -> None:
        self.router = router
        self.hello_timeout = hello_timeout
        self.max_pending = max_pending
        self.max_rate = max_rate
        self.burst = burst
        self.allowed_hosts = tuple(allowed_hosts)
        self._static = StaticFiles()
        self._shedding: set[asyncio.Task] = set()  # 1013 closes under way
        # Open sessions and their connections. A session id is here exactly while
        # the router has it open: both change together, between two awaits.
        self._connections: dict[str, ServerConnection] = {}
        self._all: set[ServerConnection] = set()  # with or without a session yet

    def session_ids(self) -> list[str]:
        """Ids of the open sessions, in connection order."""
        return list(self._connections)

    def connection(self, session_id: str) -> ServerConnection:
        """The connection serving a session (``KeyError`` if it is not open)."""
        return self._connections[session_id]

    async def serve(self, host: str, port: int, **options) -> Server:
        """Start listening; ``options`` go to websockets' ``serve`` (ping_interval...)."""
        return await serve(
            self._handle,
            host,
            port,
            process_request=self._process_request,
            max_size=MAX_FRAME_BYTES,
            create_connection=_BoundedClosing,
            compression=None,
            **options,
        )

    async def shut_down(self, server: Server) -> None:
        """Stop listening and close every connection with 1001, each one bounded."""
        server.close(close_connections=False)
        await asyncio.gather(
            *(close_within(c, CloseCode.GOING_AWAY) for c in list(self._all))
        )
        await server.wait_closed()

    # -- HTTP: static files, and who may open /ws (wslab.chat.web) ------------------------

    def _process_request(
        self, connection: ServerConnection, request: Request
    ) -> Response | None:
        path = request.path.partition("?")[0]
        if path != WS_PATH:
            response = self._static.response(path)
            if response is None:
                return connection.respond(HTTPStatus.NOT_FOUND, "Não encontrado.\n")
            return response
        local_address = connection.local_address[0] if connection.local_address else ""
        refusal = handshake_refusal(request.headers, local_address, self.allowed_hosts)
        if refusal is not None:
            logger.info("recusada %s: %s", _peer(connection), refusal)
            return connection.respond(HTTPStatus.FORBIDDEN, refusal + "\n")
        return None

    # -- WebSocket ---------------------------------------------------------------------

    async def _handle(self, connection: ServerConnection) -> None:
        self._all.add(connection)
        try:
            session_id = await self._open(connection)
            if session_id is not None:
                await self._serve_session(session_id, connection)
        finally:
            self._all.discard(connection)

    async def _serve_session(self, session_id: str, connection: ServerConnection) -> None:
        loop = asyncio.get_running_loop()
        bucket = (
            TokenBucket(self.max_rate, self.burst, loop.time()) if self.max_rate else None
        )
        try:
            async for frame in connection:
                if session_id not in self._connections:
                    break  # shed as too slow while this frame was in flight
                if bucket is not None and not bucket.allow(loop.time()):
                    self._reply(session_id, connection, encode_error(
                        f"Devagar: limite de ritmo excedido (em média {self.max_rate:g} "
                        "por segundo); esta linha não foi enviada."
                    ))
                    continue
                try:
                    say = parse_frame(frame)
                except BadFrame as error:
                    self._reply(session_id, connection, encode_error(str(error)))
                    continue
                self._flush(self.router.submit(session_id, say.text))
        except ConnectionClosed:
            pass  # 1009, a lost peer...: the close code is logged below
        finally:
            self._forget(session_id)
            logger.info(
                "fechada %s (%s): %s %r",
                session_id,
                _peer(connection),
                connection.close_code,
                connection.close_reason or "",
            )

    async def _open(self, connection: ServerConnection) -> str | None:
        """Read the hello and open a session; on failure close and return None."""
        try:
            first = await asyncio.wait_for(connection.recv(), self.hello_timeout)
        except TimeoutError:
            return await self._refuse(
                connection,
                ChatCloseCode.BAD_HELLO,
                f"O hello não chegou em {self.hello_timeout:g} s.",
            )
        except ConnectionClosed:
            logger.info("fechada antes do hello %s", _peer(connection))
            return None
        try:
            hello = parse_hello(first)
            session = self.router.connect(hello.user, hello.secret, hello.resume)
        except BadHello as error:
            return await self._refuse(connection, error.code, str(error))
        except AuthError:
            return await self._refuse(
                connection, ChatCloseCode.BAD_SECRET, "Segredo errado para este nome."
            )
        except ValueError as error:  # the router's rules: name, offset
            return await self._refuse(connection, ChatCloseCode.BAD_HELLO, str(error))

        # Welcome, replay and registration happen with no await in between, so no
        # other message can overtake the replay or reach the client before welcome.
        frames = [encode_welcome(session, self.router.epoch)]
        frames += [encode_delivery(d, replayed=d.kept) for d in self.router.take(session.id)]
        for frame in frames:
            broadcast([connection], frame)
        self._connections[session.id] = connection
        logger.info(
            "aberta %s %s de %s (recuperada=%s, %d reenviadas)",
            session.id,
            session.user,
            _peer(connection),
            session.recovered,
            len(frames) - 1,
        )
        return session.id

    async def _refuse(self, connection: ServerConnection, code: int, reason: str) -> None:
        logger.info("recusada %s: %d %s", _peer(connection), code, reason)
        await close_within(connection, code, _close_reason(reason))
        return None

    def _too_slow(self, session_id: str, connection: ServerConnection) -> bool:
        """Shed the session if its client left more than ``max_pending`` bytes unread."""
        if connection.transport.get_write_buffer_size() <= self.max_pending:
            return False
        self._shed(session_id, connection)
        return True

    def _reply(self, session_id: str, connection: ServerConnection, frame: str) -> None:
        """Answer one session alone (an error notice), unless its client is too slow."""
        if not self._too_slow(session_id, connection):
            broadcast([connection], frame)

    def _flush(self, session_ids: list[str]) -> None:
        """Send what the router queued for these sessions.

        The router puts the same delivery object in every queue, so the connections
        are grouped by delivery: each one is encoded once and written to its whole
        group with one ``broadcast`` call.
        """
        groups: dict[int, tuple[Delivery, list[ServerConnection]]] = {}
        for session_id in session_ids:
            connection = self._connections[session_id]
            deliveries = self.router.take(session_id)
            if self._too_slow(session_id, connection):
                continue
            if len(deliveries) != 1:  # never after one submit; kept in order anyway
                for delivery in deliveries:
                    broadcast([connection], encode_delivery(delivery))
                continue
            delivery = deliveries[0]
            group = groups.get(id(delivery))
            if group is None:
                group = groups[id(delivery)] = (delivery, [])
            group[1].append(connection)
        for delivery, connections in groups.values():
            broadcast(connections, encode_delivery(delivery))

    def _shed(self, session_id: str, connection: ServerConnection) -> None:
        """End the session of a client too slow to read; it may resume later."""
        logger.info("lenta %s (%s): fechando com 1013", session_id, _peer(connection))
        self._forget(session_id)
        task = asyncio.get_running_loop().create_task(
            close_within(
                connection,
                CloseCode.TRY_AGAIN_LATER,
                "Cliente lento demais: reconecte e retome do último offset.",
            )
        )
        self._shedding.add(task)  # a reference, so the task is not collected midway
        task.add_done_callback(self._shedding.discard)

    def _forget(self, session_id: str) -> None:
        self._connections.pop(session_id, None)
        self.router.disconnect(session_id)


class ChatServer:
    """A :class:`ChatService` running in a background thread, for tests and notebooks.

    Use it as a context manager; ``url`` (the browser client) and ``ws_url`` are known
    once it has started. Leaving the ``with`` closes every connection with 1001.

    Args:
        host, port: where to listen; port 0 picks a free one.
        retention: history size of the router created when ``router`` is omitted.
        router: an existing router to serve.
        ping_interval, ping_timeout, close_timeout: websockets' keepalive and
            closing handshake bounds, in seconds.
        service_options: ``hello_timeout``, ``max_pending``, ``max_rate``, ``burst``,
            ``allowed_hosts``: see :class:`ChatService`.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        retention: int = 1000,
        router: ChatRouter | None = None,
        ping_interval: float | None = 20.0,
        ping_timeout: float | None = 20.0,
        close_timeout: float | None = CLOSE_TIMEOUT,
        **service_options,
    ) -> None:
        self.host = host
        self.service = ChatService(
            router if router is not None else ChatRouter(retention), **service_options
        )
        self._port = port
        self._options = {
            "ping_interval": ping_interval,
            "ping_timeout": ping_timeout,
            "close_timeout": close_timeout,
        }
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def router(self) -> ChatRouter:
        return self.service.router

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("o servidor de chat não está rodando")
        return self._server.sockets[0].getsockname()[1]

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"

    @property
    def ws_url(self) -> str:
        return self.url.replace("http://", "ws://", 1) + WS_PATH.lstrip("/")

    def start(self, timeout: float = 10.0) -> ChatServer:
        """Start the event loop thread and listen; returns once the port is bound."""
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                self._server = loop.run_until_complete(
                    self.service.serve(self.host, self._port, **self._options)
                )
            except BaseException as error:  # reported to start() below
                failure.append(error)
                ready.set()
                loop.close()
                return
            ready.set()
            try:
                loop.run_until_complete(self._server.wait_closed())
            finally:
                loop.close()

        self._thread = threading.Thread(target=run, name="wslab-chat-server", daemon=True)
        self._thread.start()
        if not ready.wait(timeout):
            raise TimeoutError(f"o servidor de chat não começou em {timeout:g} s")
        if failure:
            raise failure[0]
        return self

    def stop(self, timeout: float | None = None) -> None:
        """Close every connection with 1001 and wait for the thread to end.

        By default waits ``close_timeout`` plus 5 s: a peer that does not answer the
        close is cut after ``close_timeout``.
        """
        if self._server is None or self._loop is None or self._thread is None:
            return
        if timeout is None:
            timeout = (self._options["close_timeout"] or CLOSE_TIMEOUT) + 5.0
        asyncio.run_coroutine_threadsafe(self.service.shut_down(self._server), self._loop)
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise TimeoutError(f"o servidor de chat não parou em {timeout:g} s")
        self._server = None

    def __enter__(self) -> ChatServer:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def _call(self, coroutine, timeout: float):
        if self._loop is None:
            raise RuntimeError("o servidor de chat não está rodando")
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout)

    def session_ids(self, timeout: float = 5.0) -> list[str]:
        """Ids of the open sessions (read on the server's loop)."""

        async def read() -> list[str]:
            return self.service.session_ids()

        return self._call(read(), timeout)

    def drop(self, session_id: str, timeout: float = 5.0) -> None:
        """Cut a session's TCP connection without a close frame, as a network failure
        would; returns once the server has ended the session.

        Raises:
            KeyError: if the session is not open.
        """

        async def cut() -> None:
            connection = self.service.connection(session_id)
            connection.transport.abort()
            async with asyncio.timeout(timeout):
                await connection.wait_closed()
                while session_id in self.service.session_ids():
                    await asyncio.sleep(0.01)

        self._call(cut(), timeout)
