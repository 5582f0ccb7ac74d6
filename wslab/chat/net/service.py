"""The chat on the network: a websockets (asyncio) server around a :class:`ChatNode`.

The server owns no routing logic: it turns frames into node calls (:mod:`.wire`
parses them) and writes the :class:`Outbound` items the node returns or emits, each
encoded once and written to each of its sessions (compression is off, so every recipient
gets the very same bytes).

HTTP (:mod:`.http`): ``/`` and the other files of ``wslab/chat/net/static`` are the browser
client; ``/ws`` is the WebSocket endpoint. A ``Host`` that does not name this server
(DNS rebinding) gets 403, on the page too, with the reason; on ``/ws`` so does an
``Origin`` of another site (cross-site WebSocket hijacking).

One bad client never disturbs the others, and each one's cost is capped:

- connections: at most ``caps.max_connections`` in all, ``caps.max_per_address`` per
  host and ``caps.max_per_network`` per network (:mod:`.gate`); of those still waiting
  for their session (handshake and hello to come) ``caps.max_waiting_per_address`` per
  host and ``caps.max_waiting_per_network`` per network. A refusal is answered, the
  moment TCP is accepted, with 503 or 429 and one sentence (at most
  ``caps.max_refused`` refused sockets linger half-closed at once). When
  ``caps.max_waiting`` connections wait, a newcomer is let in and the oldest waiting
  connection of the network holding the most is cut. The handshake must end within
  ``open_timeout`` and the hello come within ``hello_timeout``; while the waiting pool
  is over half full, a connection may wait :data:`.gate.PRESSED_WAIT` s in all;
- an invalid hello closes with 4000, a wrong secret with 4001, too many wrong secrets
  with 4029, too many new names with 4003 (the node's rules, :mod:`.node`);
- after the hello, malformed JSON, an unknown type, a binary frame or a line over the
  rate limit get an error frame (every frame counts against the rate) and the
  connection stays up; a frame above 16 KiB closes with 1009;
- output: a client that leaves more than ``max_pending`` bytes unread is closed with
  1013 and stops being read (pings it sends are not answered into a full buffer);
  a replay is written in chunks, waiting for the client to read each, under the same
  limit, so a resume from offset 0 neither blocks the loop nor buffers megabytes;
- every closing handshake ends within ``close_timeout`` (:func:`close_within`);
- input: each connection may send ``FRAMES_PER_SECOND`` frames (pings included) and
  ``BYTES_PER_SECOND`` bytes on average; past that its socket is not read until the
  budget refills, so TCP slows the sender and a flood costs the loop a bounded share;
  each read takes at most ``READ_SIZE`` bytes, so a busy socket never holds the loop;
- nothing is written to a transport that is closing (a peer that reset the
  connection), so asyncio never logs "socket.send() raised exception." for it.

Memory, with the defaults. Per connection, in this process: at most ``max_pending`` (1
MiB) of unread output, plus one write past it (one frame, or frames joined up to
``COALESCE_BYTES``: 16 KiB), plus websockets' read side (``MAX_QUEUE`` frames of 16
KiB, one ``READ_SIZE`` read, one frame being parsed: about 100 KiB), plus ~30 KiB of
fixed state: about 1.2 MiB. Shared: a history read holds at most ``retention``
messages (1,000 x 16 KiB = 16 MiB) and at most ``Limits.max_replays`` (2) run at once;
a replay keeps one page of it (:data:`..node.replay.PAGE`, 32 messages: at most 512 KiB) while
its client reads, and at most ``Limits.max_pending_logins`` (64) replays are under way:
32 MiB in all (:class:`..node.Replay`); a scrypt hash needs 16 MiB and at most
``Limits.kdf_workers`` (2) run at once. In total, at most about 1.2 MiB x
``caps.max_connections`` + 96 MiB (``python -m wslab.chat serve`` cuts
``max_connections`` to the limit of open files minus 64 and minus the refused
connections that may linger: with the usual 1,024, 832 connections, about 1 GiB in the
worst case, when every one of them is a client that stops reading at the worst
moment). The kernel's socket buffers come on top, outside the process. ``python -m
benchmarks.chat_attacks`` measures the RSS under each attack. Every client-supplied value in a log line is cut and escaped,
and repeated log lines are counted (:mod:`.logs`).

Every connection is served on one event loop; each node call runs to completion
between two awaits of its own, so the hub needs no locks. ``python -m wslab.chat
serve`` runs it from the command line; :class:`ChatServer` runs it in a background
thread, for tests and notebooks.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Awaitable, Callable, Collection, Iterable
from http import HTTPStatus
from typing import Any, cast

from websockets.asyncio.server import Server, ServerConnection, broadcast, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response
from websockets.protocol import State
from websockets.typing import Data

from ..errors import CloseCode, Refusal, UnknownSession
from ..node import ChatNode
from ..node.replay import Replay
from ..rules.messages import Outbound, answering
from ..rules.wire import (
    MAX_FRAME_BYTES,
    BadMessage,
    Say,
    encode_item,
    encode_welcome,
    parse_hello,
    parse_message,
)
from .connection import CLOSE_TIMEOUT, FRAMES_PER_SECOND, Connection, close_within, writable
from .fanout import PreparedText, join, prepare_text, write_prepared
from .gate import Caps, Gate
from .http import StaticFiles, handshake_refusal, parse_origin, refusal_page, socket_url
from .logs import shown
from .metrics import Metrics
from .probes import PROBE_PATHS, Readiness, probe_response
from .proxy import Network, TrustedProxies, forwarded_for, forwarded_hops
from .tls import HSTS

__all__ = ["ChatService", "WS_PATH"]

WS_PATH = "/ws"
HELLO_TIMEOUT = 10.0
OPEN_TIMEOUT = 5.0  # the HTTP handshake; websockets' default is 10 s
MAX_PENDING_BYTES = 1 << 20
MAX_QUEUE = 4  # frames websockets reads ahead per connection (4 x 16 KiB at most)
TOO_SLOW = "Cliente lento demais: reconecte e retome do último offset."  # 1013
REPLAY_CHUNK = 64 * 1024  # bytes of replay written before waiting for the client
COALESCE_BYTES = 16 * 1024  # frames of several messages joined into one write, at most
SWEEP = 0.5  # seconds between two looks for connections that waited too long
LOST_REASON = "O servidor perdeu parte do histórico: reconecte e retome do último offset."
DRAIN_REASON = "Este nó está reiniciando: reconecte para continuar noutro."  # 1012
DRAIN_TIMEOUT = 10.0  # seconds from SIGTERM to the last connection closed, at most
# Refusals of a login, by close code, for the metrics.
_REFUSAL_REASONS = {4000: "hello", 4001: "secret", 4003: "names", 4029: "throttled", 1013: "busy"}

logger = logging.getLogger(__name__)


ProcessRequest = Callable[[ServerConnection, Request], Response | None]
# Lines of one session waiting for their commit, each answered by a list of items.
Lines = set["asyncio.Task[list[Outbound[Client]]]"]


def _same(handles: Collection[object], other: Collection[object]) -> bool:
    """Whether two items go to the same sessions: the very same snapshot (the hub hands
    consecutive public messages one tuple), or small equal ones (one session's)."""
    return handles is other or (len(handles) <= 8 and handles == other)


class Client:
    """The handle the hub holds for one session: its connection and its session id."""

    __slots__ = ("connection", "in_flight", "session_id")

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self.session_id = ""
        self.in_flight = 0  # lines read and not yet answered (the drain waits for them)


class ChatService:
    """Serves one :class:`ChatNode` over WebSocket connections on one event loop.

    Args:
        node: the chat's rules and stores; the service starts and closes it.
        hello_timeout: seconds a new connection has to send its hello.
        max_pending: bytes a connection may leave unread before it is closed with 1013.
        allowed_hosts: names, besides ``localhost`` and the server's addresses, that
            the ``Host`` header may carry (a server reached by a DNS name).
        caps: connection caps (:class:`Caps`).
        other_nodes: origins (``http://HOST:PORT``) of the other nodes of the chat: the
            welcome lists them (as WebSocket URLs, after this node's own) so a browser
            can fail over, the page may connect to them, and their pages may open /ws.
        allowed_origins: more origins whose pages may open /ws (a name in front).
        pipeline: lines of one connection that may wait for their commit at once.
            With 1, a connection's next frame is read only after its line is stored;
            more lets one sender fill a group commit. It applies only when the log
            declares itself ``ordered`` (:class:`wslab.chat.stores.MessageLog`): on
            any other, a connection has one line in flight. A line whose checks await
            the store (``/msg`` to someone offline, ``/who``) first waits for the
            earlier ones, so a connection's lines are always stored in the order sent.
        max_frames: frames per second one connection may send (pings included; bursts
            of twice that, and bytes in proportion); None lifts the input budget, for a
            benchmark that also lifts the line rate.
        trusted: the proxies whose word on the client's address is taken, and which
            way they say it (:mod:`.proxy`); nobody by default.
        public_urls: origins users reach (``https://chat.example.com``): Host and
            Origin may name them, the welcome's ``nodes`` and the page's CSP use them
            (a browser behind a balancer reconnects through it, never to a node).
        metrics: the collectors (:mod:`.metrics`); a fresh set by default.
        metrics_allow: networks whose clients may read ``/metrics`` (none: nobody).
        tls: the node serves TLS itself: pages carry HSTS.
    """

    def __init__(
        self,
        node: ChatNode[Client],
        *,
        hello_timeout: float = HELLO_TIMEOUT,
        max_pending: int = MAX_PENDING_BYTES,
        allowed_hosts: Collection[str] = (),
        caps: Caps | None = None,
        other_nodes: Collection[str] = (),
        allowed_origins: Collection[str] = (),
        pipeline: int = 1,
        max_frames: float | None = FRAMES_PER_SECOND,
        trusted: TrustedProxies | None = None,
        public_urls: Collection[str] = (),
        metrics: Metrics | None = None,
        metrics_allow: tuple[Network, ...] = (),
        tls: bool = False,
    ) -> None:
        self.node = node
        self.trusted = trusted if trusted is not None else TrustedProxies()
        self.public = tuple(parse_origin(url) for url in public_urls)
        self.metrics = metrics if metrics is not None else Metrics()
        if node.metrics is None:
            node.metrics = self.metrics
        self.metrics_allow = metrics_allow
        self.tls = tls
        self.readiness = Readiness()
        self._watch: asyncio.Task[None] | None = None
        self._noted: set[str] = set()  # kinds of problem already logged once
        self.pipeline = max(1, pipeline) if node.log.ordered else 1
        self.max_frames = max_frames
        self.other_nodes = tuple(parse_origin(node) for node in other_nodes)
        self.allowed_origins = (*self.other_nodes, *(parse_origin(o) for o in allowed_origins))
        self.node_urls: tuple[str, ...] = ()  # WebSocket URLs for the welcome, set by serve()
        self.hello_timeout = hello_timeout
        self.max_pending = max_pending
        self.allowed_hosts = tuple(allowed_hosts)
        self.gate: Gate[Connection] = Gate(caps if caps is not None else Caps())
        self.open_timeout: float | None = OPEN_TIMEOUT
        self._static = StaticFiles(
            tuple(socket_url(origin) for origin in (*self.public, *self.other_nodes)),
            extra_headers=[HSTS] if tls else [],
        )
        self._clients: dict[str, Client] = {}  # open sessions, in opening order
        self._all: set[Connection] = set()  # with or without a session yet
        self._sweeper: asyncio.Task[None] | None = None
        # The connections of the last handles written to (a client's connection never
        # changes; holding the tuple keeps its identity from being reused).
        self._last_handles: Collection[Client] = ()
        self._connections: list[Connection] = []

    def session_ids(self) -> list[str]:
        """Ids of the open sessions, in opening order."""
        return list(self._clients)

    def connection(self, session_id: str) -> Connection:
        """The connection serving a session.

        Raises:
            UnknownSession: (a ``KeyError`` too) the session is not open.
        """
        client = self._clients.get(session_id)
        if client is None:
            raise UnknownSession(session_id)
        return client.connection

    @property
    def epoch(self) -> str:
        return self.node.epoch

    async def serve(self, host: str, port: int, **options: Any) -> Server:
        """Start the node and listen; ``options`` go to websockets' ``serve``.

        Raises:
            StoreError: the store cannot be opened.
        """
        await self.node.start(self.send, self.restart_sessions)
        self._sweeper = asyncio.get_running_loop().create_task(self._sweep())
        options.setdefault("open_timeout", OPEN_TIMEOUT)
        self.open_timeout = options["open_timeout"]
        options.setdefault("max_queue", MAX_QUEUE)
        # websockets types its callbacks for any ServerConnection; this server's are
        # all Connections (create_connection), which the casts say.
        server = await serve(
            cast(Callable[[ServerConnection], Awaitable[None]], self._handle),
            host,
            port,
            process_request=cast(ProcessRequest, self._process_request),
            max_size=MAX_FRAME_BYTES,
            create_connection=cast(
                type[ServerConnection], functools.partial(Connection, service=self)
            ),
            compression=None,
            **options,
        )
        self._watch = self.readiness.start(self.node.check)
        self.metrics.watch(
            connections=lambda: self.gate.open_total,
            sessions=lambda: len(self._clients),
            users_online=lambda: len(self.node.online_here()),
            kdf_queue=lambda: self.node.pending_logins,
            draining=lambda: int(self.readiness.draining),
        )
        if self.public:  # behind a balancer: browsers come back through it
            self.node_urls = tuple(socket_url(origin) for origin in self.public)
        elif self.other_nodes:  # a cluster: the welcome names every node, this one first
            bound = server.sockets[0].getsockname()
            own = (
                ()
                if bound[0] in ("0.0.0.0", "::")
                else (
                    socket_url(
                        f"http://{f'[{bound[0]}]' if ':' in bound[0] else bound[0]}:{bound[1]}"
                    ),
                )
            )
            self.node_urls = (*own, *(socket_url(node) for node in self.other_nodes))
        return server

    async def shut_down(self, server: Server) -> None:
        """Stop listening, close every connection with 1001 (bounded), close the node."""
        server.close(close_connections=False)
        if self._sweeper is not None:
            self._sweeper.cancel()
        await asyncio.gather(*(close_within(c, CloseCode.GOING_AWAY) for c in list(self._all)))
        await server.wait_closed()
        await Readiness.stop(self._watch)
        await self.node.stop()

    async def drain(self, server: Server, bound: float = DRAIN_TIMEOUT) -> None:
        """Stop as a rolling restart wants, within ``bound`` seconds (then the node's
        stores close):

        - at once, ``/readyz`` answers 503 and no new session starts (``/ws`` gets 503,
          a hello arriving gets 1012), while the listener stays open for the probes;
        - every session stops being read; the lines already read are handled as usual
          (stored and echoed, or answered with an error), then it is closed with 1012
          (service restart), so its client resumes on another node;
        - at ``bound`` minus the close timeout, sessions still busy are closed all the
          same (a line stored then is kept, its echo is not sent: the client gets it on
          resume), and any close not answered in time cuts TCP.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + bound
        self.readiness.draining = True
        self.note("drenando: /readyz 503, fechando as sessões com 1012 (no máximo %g s)", bound)
        for connection in list(self._all):
            connection.draining = True
            connection.transport.pause_reading()
        close_by = deadline - min(CLOSE_TIMEOUT, bound / 2)
        waiting = set(self._all)
        while waiting:
            for connection in list(waiting):
                if connection.client is None or self._idle(connection) or loop.time() >= close_by:
                    waiting.discard(connection)
                    if connection.client is not None:
                        self._forget(connection.client.session_id)
                    # Read again, for the client's close frame (a line that comes now
                    # finds its session gone and is not stored).
                    connection.draining = False
                    if not connection.transport.is_closing():
                        connection.transport.resume_reading()
                    connection.close_soon(CloseCode.SERVICE_RESTART, DRAIN_REASON)
            if waiting:
                await asyncio.sleep(0.005)
        closes = [c.closing for c in list(self._all) if c.closing is not None]
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(max(0.0, deadline - loop.time())):
                await asyncio.gather(*closes, return_exceptions=True)
        # Cut whatever is still open: a session's close still under way, and a
        # connection whose handler has returned (out of _all) while websockets' own
        # close waits for a slow reader (its close_timeout is 10 s; the bound is ours).
        for still_open in {*self._all, *server.all_connections}:
            still_open.transport.abort()
        server.close(close_connections=False)
        await server.wait_closed()
        await Readiness.stop(self._watch)
        await self.node.stop()

    @staticmethod
    def _idle(connection: Connection) -> bool:
        """Whether a session's loop waits for a frame with none read and no line in
        flight: all it read is handled. (websockets' queue of frames read ahead.)"""
        frames, client = connection.recv_messages.frames, connection.client
        return (
            len(frames) == 0
            and frames.get_waiter is not None
            and (client is None or not client.in_flight)
        )

    def note(self, message: str, *args: object) -> None:
        logger.info(message, *args)

    def note_once(self, kind: str, message: str, *args: object) -> None:
        """Log ``message`` the first time a problem of ``kind`` is seen, never again."""
        if kind not in self._noted:
            self._noted.add(kind)
            logger.warning(message + " (avisado uma vez só)", *args)

    # -- the waiting pool ---------------------------------------------------------------

    def make_room(self, connection: Connection) -> None:
        """Cut a waiting connection (the gate chose it) to let a newcomer in."""
        self.note(
            "cortada %s: sala de espera cheia, lugar dado a outra conexão", connection.address
        )
        connection.transport.abort()

    async def _sweep(self) -> None:
        """Cut the connections that waited too long for their session: ``open_timeout``
        plus ``hello_timeout``, or less while the waiting pool is over half full
        (:meth:`.gate.Gate.expired`). Every ``SWEEP`` seconds."""
        while True:
            await asyncio.sleep(SWEEP)
            wait = (self.open_timeout or OPEN_TIMEOUT) + self.hello_timeout
            late = self.gate.expired(asyncio.get_running_loop().time(), wait)
            if late:
                self.note("cortadas %d conexões que esperavam demais para entrar", len(late))
            for connection in late:
                connection.transport.abort()

    # -- the store lost messages (a new epoch): every session resumes -------------------

    def restart_sessions(self, epoch: str) -> None:
        """Close every open connection with 1012 at once (no more live delivery to
        them), so that each client resumes and is told, by the new epoch or the gap,
        what it may have lost."""
        self.note("o histórico perdeu mensagens (época %s): fechando as sessões com 1012", epoch)
        for connection in list(self._all):
            if connection.state is not State.OPEN or connection.closing is not None:
                continue
            if connection.client is not None:
                self._forget(connection.client.session_id)
            connection.close_soon(CloseCode.SERVICE_RESTART, LOST_REASON)

    # -- HTTP: static files, and who may open /ws (wslab.chat.net.http) ------------------------

    def _process_request(self, connection: Connection, request: Request) -> Response | None:
        connection.requested = True
        path = request.path.partition("?")[0]
        source = self.trusted.source
        if connection.proxied and source != "proxy-protocol":
            if source == "forwarded":
                hops = forwarded_hops(request.headers.get_all("Forwarded"))
            else:
                hops = forwarded_for(request.headers.get_all("X-Forwarded-For"))
            over = connection.readdress(hops, source)
            if over is not None:
                self.metrics.refused("per-address")
                return connection.respond(over[0], over[1] + "\n")
        if path in PROBE_PATHS and path != "/metrics":  # any Host: a balancer's probe
            return probe_response(path, self.readiness, self.metrics, connection.address, ())
        local = connection.local_address
        refusal = handshake_refusal(
            request.headers,
            local[0] if local else "",
            self.allowed_hosts,
            local_port=local[1] if local else None,
            check_origin=path == WS_PATH,
            allowed_origins=self.allowed_origins,
            public_origins=self.public,
        )
        if refusal is not None:
            self.metrics.refused("host")
            self.note("recusada %s %s: %s", connection.address, shown(path, 40), refusal)
            body = refusal_page(refusal)
            headers = Headers(
                [("Content-Type", "text/html; charset=utf-8"), ("Content-Length", str(len(body)))]
            )
            return Response(HTTPStatus.FORBIDDEN, "Forbidden", headers, body)
        if path == "/metrics":
            return probe_response(
                path, self.readiness, self.metrics, connection.address, self.metrics_allow
            )
        if path == WS_PATH:
            if self.readiness.draining:
                self.metrics.refused("draining")
                response = connection.respond(HTTPStatus.SERVICE_UNAVAILABLE, DRAIN_REASON + "\n")
                response.headers["Retry-After"] = "1"
                return response
            return None
        page = self._static.response(path)
        if page is None:
            return connection.respond(HTTPStatus.NOT_FOUND, "Não encontrado.\n")
        return page

    # -- WebSocket ---------------------------------------------------------------------

    async def _handle(self, connection: Connection) -> None:
        self._all.add(connection)
        try:
            client = await self._open(connection)
            if client is not None:
                await self._serve_session(client)
        finally:
            self._all.discard(connection)

    async def _open(self, connection: Connection) -> Client | None:
        """Read the hello, log in, write the replay; on failure close and return None.

        All or nothing: the session is registered with the service only once its
        replay is written and it is live; any failure before closes it in the node.
        """
        try:
            first = await asyncio.wait_for(connection.recv(), self.hello_timeout)
        except TimeoutError:
            await self._refuse(
                connection,
                Refusal(f"O hello não chegou em {self.hello_timeout:g} s.", CloseCode.BAD_HELLO),
            )
            return None
        except ConnectionClosed:
            return None
        self.gate.heard(connection)  # its login is under way, bounded by the node
        client = Client(connection)
        try:
            if self.readiness.draining:
                raise Refusal(DRAIN_REASON, CloseCode.SERVICE_RESTART)
            hello = parse_hello(first)
            session, replay = await self.node.open(
                hello.user,
                hello.secret,
                client,
                address=connection.address,
                resume=hello.resume,
                history=hello.history,
            )
        except Refusal as refusal:
            await self._refuse(connection, refusal)
            return None
        client.session_id = session.id
        try:
            self._write(connection, encode_welcome(session, self.node_urls))
            replayed = await self._replay(connection, replay)
            self.send(self.node.go_live(session.id))  # what came while replaying
        except Refusal as refusal:  # too slow, behind, or the hub's buffer overflowed
            self.node.close(session.id)
            await self._refuse(connection, refusal)
            return None
        except BaseException:
            self.node.close(session.id)
            raise
        finally:
            replay.close()
        if connection.state is not State.OPEN or self.readiness.draining:
            self.node.close(session.id)
            if self.readiness.draining:
                await self._refuse(connection, Refusal(DRAIN_REASON, CloseCode.SERVICE_RESTART))
            return None
        self.metrics.replayed.inc(replayed)
        self._clients[session.id] = client
        connection.client = client
        connection.seated = True
        self.gate.seated(connection)
        self.note(
            "aberta %s %s de %s (recuperada=%s, %d reenviadas)",
            session.id,
            session.user,
            connection.address,
            session.recovered,
            replayed,
        )
        return client

    async def _replay(self, connection: Connection, replay: Replay[Client]) -> int:
        """Write a session's first items in chunks of ``REPLAY_CHUNK`` bytes, waiting
        (at most ``close_timeout``) for the client to read each; the replay reads its
        next page from the log only when asked (:class:`.node.Replay`). Returns how
        many."""
        written = 0
        async for item in replay:
            if not writable(connection):
                break
            self._write(connection, encode_item(item.item, replayed=item.replayed))
            written += 1
            buffered = connection.transport.get_write_buffer_size()
            if buffered > self.max_pending:
                raise Refusal(TOO_SLOW, CloseCode.TRY_AGAIN_LATER)
            if buffered > REPLAY_CHUNK:
                try:
                    async with asyncio.timeout(connection.close_timeout or CLOSE_TIMEOUT):
                        while connection.transport.get_write_buffer_size() > REPLAY_CHUNK // 2:
                            await asyncio.sleep(0.005)
                            if not writable(connection):
                                break
                except TimeoutError:
                    raise Refusal(TOO_SLOW, CloseCode.TRY_AGAIN_LATER) from None
        return written

    async def _serve_session(self, client: Client) -> None:
        connection, session_id = client.connection, client.session_id
        in_flight: Lines = set()  # lines waiting for their commit (pipeline)
        try:
            async for frame in connection:
                client.in_flight += 1
                try:
                    if not await self._line(client, frame, in_flight):
                        break
                finally:
                    client.in_flight -= 1
        except ConnectionClosed:
            pass  # 1009, a lost peer...: the close code is logged below
        finally:
            self._forget(session_id)
            self.metrics.closed(connection.close_code)
            self.note(
                "fechada %s (%s): %s %s",
                session_id,
                connection.address,
                connection.close_code,
                shown(connection.close_reason or "", 80),
            )

    async def _line(self, client: Client, frame: Data, in_flight: Lines) -> bool:
        """Handle one frame of a session: its line stored (or refused), in the order
        read. False when the session is gone (shed while this frame was in flight)."""
        connection, session_id = client.connection, client.session_id
        if session_id not in self._clients:
            return False
        try:
            said: Say | BadMessage = parse_message(frame)
        except BadMessage as error:
            said = error
        over = self.node.spend(session_id, connection.address)
        if over is not None:  # every frame costs, a malformed one too
            self.send(answering(over, None if isinstance(said, BadMessage) else said.id))
            return True
        if isinstance(said, BadMessage):
            self.send(self.node.error(session_id, str(said)))
            return True
        line = self.node.submit(
            session_id, said.text, client_id=said.id, address=connection.address, charged=True
        )
        if self.pipeline == 1 or self.node.awaits_store(said.text):
            if in_flight:
                await asyncio.wait(in_flight)
            self.send(await line)
            return True
        while len(in_flight) >= self.pipeline:
            await asyncio.wait(in_flight, return_when=asyncio.FIRST_COMPLETED)
        task = asyncio.get_running_loop().create_task(line)
        in_flight.add(task)
        client.in_flight += 1
        task.add_done_callback(in_flight.discard)
        task.add_done_callback(self._said)
        task.add_done_callback(lambda _: setattr(client, "in_flight", client.in_flight - 1))
        return True

    async def _refuse(self, connection: Connection, refusal: Refusal) -> None:
        code = refusal.close_code
        draining = code == CloseCode.SERVICE_RESTART and self.readiness.draining
        self.metrics.refused("draining" if draining else _REFUSAL_REASONS.get(code, "busy"))
        self.metrics.closed(code)
        self.note(
            "recusada %s: %d %s",
            connection.address,
            refusal.close_code,
            shown(str(refusal), 160),
        )
        await close_within(connection, refusal.close_code, str(refusal))

    def _said(self, task: asyncio.Task[list[Outbound[Client]]]) -> None:
        """A pipelined line was stored or refused: send its replies (an error, if any)."""
        if task.cancelled():
            return
        with contextlib.suppress(UnknownSession):  # it closed meanwhile: nobody to answer
            self.send(task.result())

    # -- writing -----------------------------------------------------------------------

    def _write(self, connection: ServerConnection, frame: str) -> None:
        if writable(connection):
            broadcast([connection], frame)

    def send(self, items: Iterable[Outbound[Client]]) -> None:
        """Write each item, encoded once, to each of its handles that is open and keeps
        up; a peer over ``max_pending`` is shed instead. One peer's failure never
        stops the others' deliveries.

        Consecutive items for the same handles (a group commit's public messages) are
        written together: one ``transport.write`` per connection carries their frames back
        to back, in order, up to ``COALESCE_BYTES`` (:func:`.prepared.join`); the
        slow-reader check comes before each of those writes.
        """
        run: list[PreparedText] = []  # prepared items of the current run, all for `handles`
        handles: Collection[Client] = ()
        size = 0
        for item in items:
            prepared = prepare_text(encode_item(item.item, replayed=item.replayed))
            if run and (
                size + len(prepared.frames) > COALESCE_BYTES or not _same(item.handles, handles)
            ):
                self._write_run(run, handles)
                run, size = [], 0
            run.append(prepared)
            handles, size = item.handles, size + len(prepared.frames)
        if run:
            self._write_run(run, handles)

    def _write_run(self, run: list[PreparedText], handles: Collection[Client]) -> None:
        # The hub hands one snapshot (a tuple: immutable) until the sessions change.
        if handles is not self._last_handles or not isinstance(handles, tuple):
            self._last_handles, self._connections = (
                handles,
                [client.connection for client in handles],
            )
        self.metrics.delivered.inc(len(run) * len(self._connections))
        write_prepared(
            self._connections,
            join(run),  # the frames' bytes, encoded once for all
            limit=self.max_pending,
            over=self.shed_connection,
        )

    # -- shedding ----------------------------------------------------------------------

    def shed_connection(self, connection: Connection) -> None:
        """End the session of a client too slow to read; it may resume later."""
        client = connection.client
        self.metrics.shed.inc()
        if client is not None and client.session_id in self._clients:
            self.note("lenta %s (%s): fechando com 1013", client.session_id, connection.address)
            self._forget(client.session_id)
        elif connection.closing is not None or connection.state is not State.OPEN:
            return
        else:
            self.note("lenta %s, sem sessão: fechando com 1013", connection.address)
        connection.close_soon(CloseCode.TRY_AGAIN_LATER, TOO_SLOW)

    def _forget(self, session_id: str) -> None:
        self._clients.pop(session_id, None)
        self.node.close(session_id)
