"""Long polling: the server holds each request until an event is due, then answers.

The client re-asks as soon as an answer arrives, so an event waits only for the
round trip; each event (or batch of events due together) still pays a full HTTP
request and response header, over one keep-alive connection.
"""

from __future__ import annotations

from .accounting import ByteCounter, CountingHTTPConnection
from .events import CLIENT_TIMEOUT, TickSchedule, encode_batch
from .http_server import HOLD, HOST, BackgroundHTTPServer, EventHandler
from .receipt import Receipt
from .short_polling import poll_until_complete


class LongPollingHandler(EventHandler):
    """``GET /events?after=N`` waits (at most ``HOLD`` s) for event N+1, then answers."""

    def do_GET(self) -> None:
        after = self.events_after()
        if after is None:
            return
        source = self.server.source
        if after + 1 < source.count:
            source.wait_for(after + 1, self.server.stopping, HOLD)
        self.send_body(encode_batch(source.ready_after(after)), "application/json")


class LongPollingServer(BackgroundHTTPServer):
    """Long polling server for a :class:`TickSchedule` (context manager)."""

    handler_class = LongPollingHandler


def receive_by_long_polling(
    port: int,
    source: TickSchedule,
    counter: ByteCounter,
    *,
    timeout: float = CLIENT_TIMEOUT,
) -> Receipt:
    """Long-poll ``127.0.0.1:port`` until all events arrived; start the stream.

    Raises:
        TimeoutError: if the events do not all arrive within the stream duration + ``timeout``.
    """
    # a read may legitimately last a whole HOLD, so the socket waits a little longer
    conn = CountingHTTPConnection(HOST, port, counter, HOLD + timeout)
    return poll_until_complete(
        conn, source, counter, name="long polling", interval=None, timeout=timeout
    )
