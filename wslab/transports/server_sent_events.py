"""Server-Sent Events: one long HTTP response, one ``text/event-stream`` block per event.

The server writes each event as it becomes due (``id:`` and ``data:`` lines, a blank
line), as one HTTP/1.1 chunk. Like a real event stream it never ends on its own: the
client closes it when done, or the server stops. A client that reconnects sends
``Last-Event-ID`` and the server resumes after it, which is how the browser's
``EventSource`` recovers from a dropped connection.
"""

from __future__ import annotations

from .accounting import ByteCounter, CountingHTTPConnection
from .events import CLIENT_TIMEOUT, Event, TickSchedule
from .http_server import HOLD, HOST, BackgroundHTTPServer, EventHandler
from .receipt import Receipt, receive_stream


def format_event(event: Event) -> bytes:
    """One SSE block: ``id: N``, ``data: <json>``, blank line (WHATWG HTML, server-sent events)."""
    return f"id: {event.seq}\ndata: {event.encode()}\n\n".encode()


class ServerSentEventsHandler(EventHandler):
    """``GET /stream`` streams every event from ``Last-Event-ID + 1`` on, chunked."""

    def do_GET(self) -> None:
        if not self.path_is("/stream"):
            return
        source = self.server.source
        last_id = self.headers.get("Last-Event-ID", "-1")
        try:
            first = int(last_id) + 1
        except ValueError:
            self.send_error(400, "Last-Event-ID must be an integer event number")
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-store")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        try:
            for seq in range(max(first, 0), source.count):
                if not source.wait_for(seq, self.server.stopping, HOLD):
                    self.close_connection = True  # stopping, or nothing due within HOLD
                    return
                self._write_chunk(format_event(source.event(seq)))
        except OSError:
            pass  # the client went away
        else:
            self.server.stopping.wait(HOLD)  # keep the stream open, as a live one would be
        self.close_connection = True

    def _write_chunk(self, data: bytes) -> None:
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))


class ServerSentEventsServer(BackgroundHTTPServer):
    """SSE server for a :class:`TickSchedule` (context manager)."""

    handler_class = ServerSentEventsHandler


def receive_by_server_sent_events(
    port: int,
    source: TickSchedule,
    counter: ByteCounter,
    *,
    timeout: float = CLIENT_TIMEOUT,
) -> Receipt:
    """Open ``/stream`` on ``127.0.0.1:port``, start the stream, read every event, close.

    Raises:
        ConnectionError: if the answer is not a 200 event stream or ends early.
        TimeoutError: if the events do not all arrive within the stream duration + ``timeout``.
    """
    conn = CountingHTTPConnection(HOST, port, counter, timeout)
    try:
        conn.request("GET", "/stream", headers={"Accept": "text/event-stream"})
        response = conn.getresponse()
        if response.status != 200 or response.getheader("Content-Type") != "text/event-stream":
            raise ConnectionError(
                f"SSE: expected a 200 text/event-stream, got HTTP {response.status}"
            )
        data_lines: list[bytes] = []

        def read_line(receipt: Receipt) -> list[Event]:
            """One line of the stream: the event a blank line dispatches, else nothing."""
            line = response.readline()
            if not line:
                raise ConnectionError(
                    f"SSE: stream ended after {len(receipt.seqs)} of {source.count} events"
                )
            line = line.rstrip(b"\r\n")
            if line:
                name, _, value = line.partition(b":")
                if name == b"data":
                    data_lines.append(value[1:] if value.startswith(b" ") else value)
                return []
            if not data_lines:
                return []
            event = Event.decode(b"\n".join(data_lines))
            data_lines.clear()
            return [event]

        return receive_stream("SSE", source, counter, read_line, timeout=timeout, requests=1)
    finally:
        conn.close()
