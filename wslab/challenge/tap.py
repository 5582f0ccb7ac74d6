"""Client sockets that keep the first bytes they carry and honour an overall deadline.

A client library hides the bytes of its opening handshake; wrapping the socket it
writes to lets the report show the request and the response that really crossed
the wire. Only the first ``TAP_LIMIT`` bytes each way are kept, enough for the
handshake and a first frame, so a long connection costs no memory.

A per-call socket timeout does not bound a whole exchange: a peer that drips one
byte at a time resets it on every read. With ``deadline`` set (a
``time.perf_counter()`` value), every read and write waits at most until then.

For TLS the copy is taken above the encryption (plain text), by giving an
``ssl.SSLContext`` this module's socket class.
"""

from __future__ import annotations

import socket
import ssl
import time
from typing import Any

TAP_LIMIT = 16 * 1024


class _TapMixin(socket.socket):
    """Records the head of the traffic in ``sent`` and ``received`` (before
    ``ssl.SSLSocket`` in a TLS socket's bases, so its ``send`` and ``recv`` wrap TLS's).

    State lives in ``__dict__`` with defaults, because ssl builds its sockets
    without calling ``__init__``.
    """

    @property
    def deadline(self) -> float | None:
        return self.__dict__.get("_deadline")

    @deadline.setter
    def deadline(self, value: float | None) -> None:
        self.__dict__["_deadline"] = value

    @property
    def sent(self) -> bytes:
        return bytes(self._tape("_sent"))

    @property
    def received(self) -> bytes:
        return bytes(self._tape("_received"))

    # (*args: Any): the signatures of socket.socket's and ssl.SSLSocket's differ.
    def send(self, data: Any, *args: Any) -> int:
        self._hold_to_deadline()
        sent = super().send(data, *args)
        self._record("_sent", bytes(data[:sent]))
        return sent

    def recv(self, *args: Any) -> bytes:
        self._hold_to_deadline()
        data = super().recv(*args)
        self._record("_received", data)
        return data

    def _hold_to_deadline(self) -> None:
        """Shorten the socket timeout so this call cannot outlive the deadline."""
        if self.deadline is None:
            return
        left = self.deadline - time.perf_counter()
        if left <= 0:
            raise TimeoutError("deadline reached")
        current = self.gettimeout()
        if current is None or current > left:
            self.settimeout(left)

    def _tape(self, name: str) -> bytearray:
        tape: bytearray = self.__dict__.setdefault(name, bytearray())
        return tape

    def _record(self, name: str, data: bytes) -> None:
        tape = self._tape(name)
        room = TAP_LIMIT - len(tape)
        if room > 0:
            tape += data[:room]


class TappedSocket(_TapMixin):
    """A TCP socket that keeps the head of its traffic."""

    def sendall(self, data: Any, *args: Any) -> None:
        # socket.sendall is C code that never calls send(), so record here
        self._hold_to_deadline()
        super().sendall(data, *args)
        self._record("_sent", bytes(data))


class TappedSSLSocket(_TapMixin, ssl.SSLSocket):
    """A TLS socket that keeps the head of its plain-text traffic.

    ssl.SSLSocket.sendall goes through send(), which already records.
    """


def tapped_tls_context(cafile: str | None = None) -> ssl.SSLContext:
    """A default, verifying client context whose sockets are TappedSSLSocket."""
    context = ssl.create_default_context(cafile=cafile)
    context.sslsocket_class = TappedSSLSocket
    return context
