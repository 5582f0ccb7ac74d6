"""One connection with the chat's guards on its transport: admission at TCP accept,
input budgets, the slow-reader check, bounded closes.

This is the one module that overrides websockets internals (``send_data``,
``process_event``, ``recv_messages.resume``), each for a reason stated where it is done;
the service (:mod:`.service`) sees only :class:`Connection`'s own methods.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from http import HTTPStatus
from typing import TYPE_CHECKING

from websockets.asyncio.server import ServerConnection
from websockets.protocol import State

from ..errors import CloseCode, ProxyHeaderError
from ..rules.ratelimit import TokenBucket
from .logs import shown
from .proxy import canonical_address, client_address, parse_proxy_header, proxy_header_start

if TYPE_CHECKING:
    from .service import ChatService, Client

__all__ = ["CLOSE_TIMEOUT", "Connection", "close_within", "writable"]

CLOSE_TIMEOUT = 10.0  # websockets' default
REFUSAL_LINGER = 0.5  # seconds a refused connection is kept half-closed
READ_SIZE = 16 * 1024  # bytes read from a socket at once (asyncio's default: 256 KiB)
# What one connection may send, in frames of any kind (pings included) and in bytes,
# per second on average and at once; beyond that its socket is not read for a while,
# so TCP slows the sender down and its frames cost the loop no more than this.
FRAMES_PER_SECOND, FRAME_BURST = 100.0, 200
BYTES_PER_SECOND, BYTE_BURST = 256 * 1024.0, 1 << 20

logger = logging.getLogger(__name__)


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
            await connection.close(code, _close_reason(reason))
    except TimeoutError:
        connection.transport.abort()


class Connection(ServerConnection):
    """A server connection with the chat's guards on the transport itself.

    - at ``connection_made`` it asks the service's :class:`Gate` to admit it, and
      answers a refusal with its HTTP status before reading anything;
    - ``peer`` is the TCP peer, ``address`` the client (:mod:`.proxy`): the peer, or
      what a trusted proxy says. Its first bytes are looked at before websockets
      sees them: a PROXY header from an untrusted peer is refused (400), and from a
      trusted one it is required when the service reads the PROXY protocol, parsed
      (at most 16 + 65,535 bytes held) and taken off the stream;
    - when data from the peer moves it to CLOSING (its close frame, or a frame over
      ``max_size``: 1009), a bounded close starts at once: websockets enforces
      ``close_timeout`` only while a coroutine awaits the connection;
    - after each read, if the peer left more than ``max_pending`` bytes unread (pongs
      to a ping flood pile up there too), reading stops and the client is shed;
    - what a peer sends is budgeted, in frames (pings included) and bytes: once over
      the budget its socket is not read until the budget refills, so a flood costs the
      loop a bounded share, and each read takes at most ``READ_SIZE`` bytes, so one
      busy socket never holds the loop for long.
    """

    def __init__(self, *args, service: ChatService, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.service = service
        self.address = self.peer = "?"
        self.proxied = False  # the peer is a trusted proxy
        self.draining = False  # the node is stopping: nothing more is read
        self._preface: bytes | None = b""  # first bytes held until a PROXY header is ruled out
        self.admitted = False
        self.requested = False  # its HTTP request arrived whole
        self.seated = False
        self.opened_at = 0.0
        self.client: Client | None = None
        self.closing: asyncio.Task | None = None
        self._frames: TokenBucket | None = None
        self._bytes: TokenBucket | None = None
        self._resume: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        peer = transport.get_extra_info("peername")
        self.address = self.peer = (
            (canonical_address(str(peer[0])) or str(peer[0])) if peer else "?"
        )
        self.proxied = self.peer in self.service.trusted
        self.opened_at = self.loop.time()
        refusal = self.service.gate.admit(self.address, proxy=self.proxied)
        if refusal is None:
            self.admitted = True
            if hasattr(transport, "max_size"):  # asyncio's selector transports
                transport.max_size = READ_SIZE
            # websockets resumes reading when its queue of messages drains: not while
            # this connection waits for its budget.
            self.recv_messages.resume = self._resume_unless_throttled
            rate = self.service.max_frames
            if rate:  # None: no input budget (a benchmark that lifted every limit)
                now = self.loop.time()
                scale = rate / FRAMES_PER_SECOND  # bytes scale with the frames allowed
                self._frames = TokenBucket(rate, int(FRAME_BURST * scale), now)
                self._bytes = TokenBucket(BYTES_PER_SECOND * scale, int(BYTE_BURST * scale), now)
            return
        status, sentence = refusal
        self.refuse_raw(status, sentence, "per-address" if status == 429 else "full")

    def refuse_raw(self, status: HTTPStatus, sentence: str, reason: str) -> None:
        """Answer ``status`` and ``sentence`` before any HTTP is read, and close;
        ``reason`` is the refusal's metric label."""
        self.give_back()
        transport = self.transport
        self.service.note("recusada %s: %d %s", self.address, status, sentence)
        self.service.metrics.refused(reason)
        body = (sentence + "\n").encode()
        transport.write(
            f"HTTP/1.1 {status.value} {status.phrase}\r\nContent-Type: text/plain; "
            f"charset=utf-8\r\nContent-Length: {len(body)}\r\nConnection: close\r\n"
            f"Retry-After: 5\r\n\r\n".encode()
            + body
        )
        # Half-close and discard what the client sends for a moment: closing a socket
        # with its request unread would reset it, and the client could lose the answer.
        if transport.can_write_eof():
            transport.write_eof()
            self.loop.call_later(REFUSAL_LINGER, transport.close)
        else:
            transport.close()

    def close_soon(self, code: int, reason: str) -> bool:
        """Start a bounded close (:func:`close_within`) unless one is under way or the
        connection is no longer open; returns whether this call started it. The task
        is held here, so it is not collected midway."""
        if self.closing is not None or self.state is not State.OPEN:
            return False
        self.closing = self.loop.create_task(close_within(self, code, reason))
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        if self._resume is not None:
            self._resume.cancel()
        timeout = self.service.open_timeout
        if (
            self.admitted
            and not self.requested
            and timeout is not None
            and self.loop.time() - self.opened_at >= timeout - 0.1
        ):
            self.service.note(
                "cortada %s: o pedido HTTP não chegou inteiro em %g s", self.address, timeout
            )
        if self.admitted:
            self.admitted = False
            self.service.gate.left(self.address, seated=self.seated)

    def give_back(self) -> None:
        """Give back the gate's count of this connection (once)."""
        if self.admitted:
            self.admitted = False
            self.service.gate.left(self.address, seated=self.seated)

    def readdress(self, hops: list[str], source: str) -> tuple[HTTPStatus, str] | None:
        """Take the client's address from a trusted proxy's ``hops`` (:mod:`.proxy`)
        and count this connection under it; a refusal when that address is over its
        caps. A hop that cannot be read leaves the proxy's address, logged once."""
        client = client_address(self.peer, self.service.trusted, hops, source=source)
        if client.problem is not None:
            self.service.note_once(
                client.problem,
                "%s de %s ilegível (%s): usado o endereço do proxy",
                source,
                self.peer,
                shown(", ".join(hops), 80),
            )
        refusal = self.service.gate.readdress(self.address, client.address)
        if refusal is None:
            self.address = client.address
        return refusal

    def data_received(self, data: bytes) -> None:
        if not self.admitted:
            return  # refused: nothing it sends is read
        if self._preface is not None:
            data = self._peel(data)
            if not data:
                return
        super().data_received(data)
        if self.transport.get_write_buffer_size() > self.service.max_pending:
            self.transport.pause_reading()
            self.service.shed_connection(self)
        elif self.closing is None and self.protocol.state is State.CLOSING:
            self.closing = self.loop.create_task(close_within(self))
        else:
            self._spend(bytes_=len(data))

    def _peel(self, data: bytes) -> bytes:
        """The stream after a PROXY header, once it is ruled out or taken off (b"" while
        more bytes are needed, or when the connection was refused)."""
        held = self._preface + data
        required = self.proxied and self.service.trusted.source == "proxy-protocol"
        start = proxy_header_start(held)
        if start is None and not required:
            self._preface = held
            return b""
        if not required:
            self._preface = None
            if start:
                self.service.note_once(
                    "untrusted-proxy-header",
                    "cabeçalho PROXY de %s, que não é um proxy confiável",
                    self.peer,
                )
                self.refuse_raw(
                    HTTPStatus.BAD_REQUEST,
                    "Cabeçalho PROXY de um endereço não confiável.",
                    "proxy-header",
                )
                return b""
            return held
        try:
            header = parse_proxy_header(held)
        except ProxyHeaderError as error:
            self._preface = None
            self.service.note_once(
                "bad-proxy-header", "cabeçalho PROXY inválido de %s: %s", self.peer, error
            )
            self.refuse_raw(HTTPStatus.BAD_REQUEST, str(error), "proxy-header")
            return b""
        if header is None:
            self._preface = held
            return b""
        self._preface = None
        refusal = (
            None if header.source is None else self.readdress([header.source], "proxy-protocol")
        )
        if refusal is not None:
            self.refuse_raw(*refusal, "per-address")
            return b""
        return held[header.length :]

    def send_data(self) -> None:
        """websockets' ``send_data``, but nothing is written once the transport is
        closing: a peer that reset the connection while pongs to its pings were queued
        would otherwise make asyncio log "socket.send() raised exception." per pong."""
        for data in self.protocol.data_to_send():
            if self.transport.is_closing():
                continue  # the peer is gone: drop what was for it
            if data:
                self.transport.write(data)
            elif self.transport.can_write_eof():
                with contextlib.suppress(Exception):
                    self.transport.write_eof()
            else:
                self.transport.close()

    def process_event(self, event) -> None:
        super().process_event(event)
        self._spend(frames=1)

    def _spend(self, frames: int = 0, bytes_: int = 0) -> None:
        """Charge what the peer sent to its budget; over it, stop reading until the
        budget has refilled to half."""
        if self._frames is None or self._bytes is None:
            return
        now = self.loop.time()
        solvent = self._frames.charge(frames, now) & self._bytes.charge(bytes_, now)
        if not solvent and self._resume is None and not self.transport.is_closing():
            self.transport.pause_reading()
            wait = max(b.seconds_until(b.burst / 2) for b in (self._frames, self._bytes))
            self._resume = self.loop.call_later(wait, self._resume_reading)

    def _resume_unless_throttled(self) -> None:
        if self._resume is None and self.closing is None and not self.draining:
            self.transport.resume_reading()

    def _resume_reading(self) -> None:
        self._resume = None
        if (
            self.closing is None
            and not self.draining
            and not self.transport.is_closing()
            and self.transport.get_write_buffer_size() <= self.service.max_pending
        ):
            self.transport.resume_reading()


def _writable(connection: ServerConnection) -> bool:
    """Whether a frame may be written: open, and its transport not closing (a write to
    a transport the peer reset makes asyncio log "socket.send() raised exception.")."""
    return connection.protocol.state is State.OPEN and not connection.transport.is_closing()


def writable(connection: ServerConnection) -> bool:
    """Whether a frame may be written: open, and its transport not closing (a write to
    a transport the peer reset makes asyncio log "socket.send() raised exception.")."""
    return connection.protocol.state is State.OPEN and not connection.transport.is_closing()
