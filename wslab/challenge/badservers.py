"""Local servers that fail on purpose, one named way each, for tests and notebooks.

Each mode reproduces one failure a client of a real WebSocket server can meet:

- ``refuse``: nothing listens on the port (connection refused).
- ``blackhole``: the accept queue is full, so the TCP handshake never completes
  (connect timeout), without sending anything off this machine.
- ``stall``: TCP is accepted, the upgrade request is never answered.
- ``http-404`` / ``http-502``: a plain HTTP answer instead of 101.
- ``wrong-accept``: 101, but with a Sec-WebSocket-Accept that does not match the key.
- ``close-early``: a correct 101, then a close frame (1000) before any message.
- ``drop``: a correct 101, then the TCP connection is cut with no close frame.
- ``silent``: a correct 101, then nothing at all.
- ``bad-frame``: a correct 101, then a frame with a reserved bit set (a protocol error).
- ``drip``: a correct 101 sent one byte at a time, too slowly for any deadline.
"""

from __future__ import annotations

import socket
import struct
import threading
from collections.abc import Callable

from wslab.background import BackgroundServer
from wslab.protocol import HandshakeError, NeedData
from wslab.protocol.handshake import check_request, parse_request, reject, switching_protocols

MODES = (
    "refuse",
    "blackhole",
    "stall",
    "http-404",
    "http-502",
    "wrong-accept",
    "close-early",
    "drop",
    "silent",
    "bad-frame",
    "drip",
)

_HTTP_ANSWERS = {
    "http-404": b"HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\n"
    b"Content-Length: 9\r\nConnection: close\r\n\r\nNot Found",
    "http-502": b"HTTP/1.1 502 Bad Gateway\r\nContent-Type: text/plain\r\n"
    b"Content-Length: 11\r\nConnection: close\r\n\r\nBad Gateway",
}
_CLOSE_NORMAL = b"\x88\x02" + struct.pack("!H", 1000)
_TEXT_WITH_RSV1 = b"\xc1\x02hi"  # FIN, RSV1 (no extension was negotiated), text "hi"
DRIP_INTERVAL = 0.3  # seconds between two bytes of the dripped response


class BadServer(BackgroundServer):
    """A loopback server that misbehaves in one ``mode`` (see MODES); a context manager."""

    def __init__(self, mode: str) -> None:
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}; choose one of {', '.join(MODES)}")
        super().__init__("127.0.0.1", 0)
        self.mode = mode
        self._held: list[socket.socket] = []
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        return self.url_for("ws")

    def _serve(self, ready: Callable[[int], None]) -> None:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.bind((self.host, 0))
        port = listener.getsockname()[1]
        if self.mode == "refuse":
            listener.close()  # the port was free a moment ago and nobody listens now
            ready(port)
            self.stopping.wait()
            return
        if self.mode == "blackhole":
            listener.listen(0)
            filler = socket.create_connection((self.host, port), timeout=2)
            self._hold(listener, filler)  # the queue is now full: later SYNs are dropped
            ready(port)
            self.stopping.wait()
            return
        listener.listen(16)
        listener.settimeout(0.1)
        ready(port)
        with listener:
            while not self.stopping.is_set():
                try:
                    conn, _ = listener.accept()
                except TimeoutError:
                    continue
                self._hold(conn)
                threading.Thread(target=self._answer, args=(conn,), daemon=True).start()

    def _shutdown(self) -> None:
        with self._lock:
            for sock in self._held:
                sock.close()
            self._held.clear()

    def _hold(self, *socks: socket.socket) -> None:
        with self._lock:
            self._held += socks

    def _answer(self, conn: socket.socket) -> None:
        try:
            conn.settimeout(5)
            key = self._read_key(conn)
            if key is None:
                return
            if self.mode == "stall":
                self.stopping.wait()
            elif self.mode in _HTTP_ANSWERS:
                conn.sendall(_HTTP_ANSWERS[self.mode])
                conn.shutdown(socket.SHUT_RDWR)
            else:
                self._upgrade(conn, key)
        except OSError:
            pass  # the client went away first

    def _upgrade(self, conn: socket.socket, key: str) -> None:
        # wrong-accept answers for another key: the accept cannot match the client's
        response = switching_protocols(key + "x" if self.mode == "wrong-accept" else key)
        if self.mode == "drip":
            for byte in response.serialize():
                if self.stopping.wait(DRIP_INTERVAL):
                    return
                conn.sendall(bytes([byte]))
            return
        conn.sendall(response.serialize())
        if self.mode == "bad-frame":
            conn.sendall(_TEXT_WITH_RSV1)
            self.stopping.wait()
        elif self.mode == "close-early":
            conn.sendall(_CLOSE_NORMAL)
            conn.recv(1024)  # the client's close frame, or nothing before the timeout
            conn.shutdown(socket.SHUT_RDWR)
        elif self.mode == "drop":
            conn.shutdown(socket.SHUT_RDWR)
        else:  # "silent" and "wrong-accept": say nothing more until stopped
            self.stopping.wait()

    @staticmethod
    def _read_key(conn: socket.socket) -> str | None:
        """The client's Sec-WebSocket-Key; None, after answering 400, for a bad request.

        Every mode reads the request first, as a real server would; the failure comes after.
        """
        data = b""
        try:
            while isinstance(parsed := parse_request(data), NeedData):
                chunk = conn.recv(4096)
                if not chunk:
                    return None
                data += chunk
            request, _ = parsed
            return check_request(request)
        except HandshakeError as error:
            conn.sendall(reject(error).serialize())
            return None
