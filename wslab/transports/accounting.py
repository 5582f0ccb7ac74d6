"""Count the bytes a client socket sends and receives, headers and framing included.

The count is taken at the socket, below HTTP and WebSocket, so it sees exactly what
crosses the wire (TCP/IP headers excluded): request lines, headers, chunk sizes,
frame headers and masks. Any library that reads through the socket (``http.client``
via ``makefile``, ``websocket-client`` via ``send``/``recv``) is counted unchanged.
"""

from __future__ import annotations

import http.client
import socket
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer, WriteableBuffer


@dataclass
class ByteCounter:
    """Running totals for one client: bytes sent, bytes received, connections opened."""

    sent: int = 0
    received: int = 0
    connections: int = 0

    def snapshot(self) -> tuple[int, int]:
        """Return ``(sent, received)`` now, to measure a phase as a difference."""
        return self.sent, self.received


class CountingSocket(socket.socket):
    """A TCP socket that adds every byte it sends or receives to a :class:`ByteCounter`.

    ``sendall`` and ``recv_into`` are counted on their own because the C
    implementation does not route them through ``send`` and ``recv``.
    """

    counter: ByteCounter

    def send(self, data: ReadableBuffer, flags: int = 0) -> int:
        sent = super().send(data, flags)
        self.counter.sent += sent
        return sent

    def sendall(self, data: ReadableBuffer, flags: int = 0) -> None:
        super().sendall(data, flags)
        self.counter.sent += memoryview(data).nbytes

    def recv(self, bufsize: int, flags: int = 0) -> bytes:
        data = super().recv(bufsize, flags)
        self.counter.received += len(data)
        return data

    def recv_into(self, buffer: WriteableBuffer, nbytes: int = 0, flags: int = 0) -> int:
        received = super().recv_into(buffer, nbytes, flags)
        self.counter.received += received
        return received


def open_counting_socket(
    host: str, port: int, counter: ByteCounter, timeout: float
) -> CountingSocket:
    """Connect a :class:`CountingSocket` to ``(host, port)`` and count the connection.

    Every later operation times out after ``timeout`` seconds, so no wait is unbounded.

    Raises:
        ValueError: if ``timeout`` is not positive.
        OSError: if the connection fails (for example ``ConnectionRefusedError``).
    """
    if not timeout > 0:
        raise ValueError(f"timeout must be positive seconds, got {timeout!r}")
    sock = CountingSocket(socket.AF_INET, socket.SOCK_STREAM)
    sock.counter = counter
    try:
        sock.settimeout(timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.connect((host, port))
    except BaseException:
        sock.close()
        raise
    counter.connections += 1
    return sock


class CountingHTTPConnection(http.client.HTTPConnection):
    """``http.client.HTTPConnection`` whose socket is a :class:`CountingSocket`.

    Keep-alive works as usual: one connection serves many requests until either side
    closes it, and ``counter.connections`` says how many were opened.
    """

    def __init__(self, host: str, port: int, counter: ByteCounter, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self.counter = counter

    def connect(self) -> None:
        assert self.timeout is not None  # __init__ takes a float
        self.sock = open_counting_socket(self.host, self.port, self.counter, self.timeout)
