"""A standard-library HTTP server on an ephemeral loopback port, run in a background thread.

Shared by the short polling, long polling and SSE servers. Used as a context manager,
it always stops: on exit it wakes handlers that wait for events, closes open
keep-alive connections and joins every thread, even when the ``with`` body raised.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from wslab.background import BackgroundServer

from .events import TickSchedule

HOST = "127.0.0.1"
HOLD = 25.0  # seconds a server waits for the next due event (below common proxy timeouts)


class _TrackingHTTPServer(ThreadingHTTPServer):
    """ThreadingHTTPServer that remembers open connections so stop() can close them."""

    daemon_threads = False  # joined in server_close()

    def __init__(
        self,
        address: tuple[str, int],
        handler: type[BaseHTTPRequestHandler],
        source: TickSchedule,
        stopping: threading.Event,
    ) -> None:
        super().__init__(address, handler)
        self.source = source
        self.stopping = stopping  # set by BackgroundServer.stop: handlers waiting for events wake
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()

    def get_request(self) -> tuple[socket.socket, Any]:
        request, address = super().get_request()
        with self._open_lock:
            self._open.add(request)
        return request, address

    def shutdown_request(self, request: socket.socket | tuple[bytes, socket.socket]) -> None:
        with self._open_lock:
            self._open.discard(request)
        super().shutdown_request(request)

    def close_open_connections(self) -> None:
        with self._open_lock:
            requests = list(self._open)
        for request in requests:
            with contextlib.suppress(OSError):  # already closed by the peer
                request.shutdown(socket.SHUT_RDWR)


class EventHandler(BaseHTTPRequestHandler):
    """Base handler: HTTP/1.1 keep-alive, fixed ``Server`` header, no logging.

    The ``Server`` header is fixed (not the Python version) so byte counts are the same
    on every machine; ``Date`` has a fixed width by its format (RFC 9110).
    """

    protocol_version = "HTTP/1.1"
    server_version = "wslab"
    disable_nagle_algorithm = True  # headers and body are two writes: don't wait for an ACK
    timeout = 30  # seconds an idle keep-alive connection may wait for its next request
    error_content_type = "text/plain; charset=utf-8"
    error_message_format = "%(code)d %(message)s\n"
    server: _TrackingHTTPServer

    def version_string(self) -> str:
        return self.server_version

    def log_message(self, format: str, *args: Any) -> None:
        pass  # the notebook must stay quiet

    def query_int(self, name: str, default: int, minimum: int) -> int | None:
        """Read integer query parameter ``name`` (at least ``minimum``).

        On bad input answer 400 with a message saying what is expected, and return None.
        """
        values = parse_qs(urlsplit(self.path).query).get(name)
        if values is None:
            return default
        try:
            value = int(values[0])
        except ValueError:
            value = None
        if value is None or value < minimum:
            self.send_error(400, f"query parameter {name} must be an integer, at least {minimum}")
            return None
        return value

    def events_after(self) -> int | None:
        """The N of ``GET /events?after=N`` (-1 when absent): the polls' one request.
        Another path is answered 404, a bad N 400; both return None."""
        if not self.path_is("/events"):
            return None
        return self.query_int("after", default=-1, minimum=-1)

    def path_is(self, expected: str) -> bool:
        """True if the request path is ``expected``; otherwise answer 404."""
        if urlsplit(self.path).path == expected:
            return True
        self.send_error(404, f"only {expected} exists here")
        return False

    def send_body(self, body: bytes, content_type: str) -> None:
        """Send a complete 200 response with ``Content-Length``, keeping the connection open."""
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Cache-Control", "no-store")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class BackgroundHTTPServer(BackgroundServer):
    """Serve ``handler_class`` for ``source`` on 127.0.0.1, ephemeral port, in a thread.

    Use as ``with ServerClass(source) as server: ... server.port ...``.
    """

    handler_class: type[EventHandler] = EventHandler

    def __init__(self, source: TickSchedule) -> None:
        super().__init__(HOST, 0)
        self.source = source
        self._httpd: _TrackingHTTPServer | None = None

    def _serve(self, ready: Callable[[int], None]) -> None:
        self._httpd = _TrackingHTTPServer(
            (self.host, self.requested_port), self.handler_class, self.source, self.stopping
        )
        ready(self._httpd.server_address[1])
        self._httpd.serve_forever(poll_interval=0.05)

    def _shutdown(self) -> None:
        """Stop serving, close every connection, join every handler thread."""
        httpd = self._httpd
        if httpd is None:
            return
        httpd.shutdown()
        httpd.close_open_connections()  # wake handlers blocked on a keep-alive read
        httpd.server_close()  # closes the listener and joins handler threads
        self._httpd = None
