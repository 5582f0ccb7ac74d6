"""Sockets that keep a copy of the first bytes they send and receive.

A client library hides the bytes of its opening handshake; wrapping the socket it
writes to lets the report show the request and the response that really crossed
the wire. Only the first ``TAP_LIMIT`` bytes each way are kept, enough for the
handshake and a first frame, so a long connection costs no memory.

For TLS the copy is taken above the encryption (plain text), by giving an
``ssl.SSLContext`` this module's socket class.
"""

from __future__ import annotations

import socket
import ssl

TAP_LIMIT = 16 * 1024


class _TapMixin:
    """Records the head of the traffic in ``sent`` and ``received``."""

    def _tape(self, name: str) -> bytearray:
        tape = self.__dict__.get(name)
        if tape is None:
            tape = self.__dict__[name] = bytearray()
        return tape

    @property
    def sent(self) -> bytes:
        return bytes(self._tape("_sent"))

    @property
    def received(self) -> bytes:
        return bytes(self._tape("_received"))

    def _record(self, name: str, data: bytes) -> None:
        tape = self._tape(name)
        room = TAP_LIMIT - len(tape)
        if room > 0:
            tape += data[:room]

    def send(self, data, *args):
        sent = super().send(data, *args)
        self._record("_sent", bytes(data[:sent]))
        return sent

    def sendall(self, data, *args):
        super().sendall(data, *args)
        self._record("_sent", bytes(data))

    def recv(self, bufsize, *args):
        data = super().recv(bufsize, *args)
        self._record("_received", data)
        return data


class TappedSocket(_TapMixin, socket.socket):
    """A TCP socket that keeps the head of its traffic."""


class TappedSSLSocket(_TapMixin, ssl.SSLSocket):
    """A TLS socket that keeps the head of its plain-text traffic."""


def tapped_tls_context(cafile: str | None = None) -> ssl.SSLContext:
    """A default, verifying client context whose sockets are TappedSSLSocket."""
    context = ssl.create_default_context(cafile=cafile)
    context.sslsocket_class = TappedSSLSocket
    return context
