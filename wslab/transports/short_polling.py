"""Short polling: the client asks "anything after event N?" every ``interval`` seconds.

The server answers at once with the events due so far (possibly none) as a JSON array,
over one keep-alive HTTP/1.1 connection. Latency is bounded by the polling interval;
every poll, empty or not, pays a full request and response header.
"""

from __future__ import annotations

import http.client
import time

from .accounting import ByteCounter, CountingHTTPConnection
from .events import CLIENT_TIMEOUT, Event, TickSchedule, decode_batch, encode_batch
from .http_server import HOLD, HOST, BackgroundHTTPServer, EventHandler
from .receipt import Receipt, receive_stream


class ShortPollingHandler(EventHandler):
    """``GET /events?after=N`` returns every due event numbered above N, immediately."""

    def do_GET(self) -> None:
        after = self.events_after()
        if after is None:
            return
        self.send_body(encode_batch(self.server.source.ready_after(after)), "application/json")


class ShortPollingServer(BackgroundHTTPServer):
    """Short polling server for a :class:`TickSchedule` (context manager)."""

    handler_class = ShortPollingHandler


def get_events(conn: http.client.HTTPConnection, after: int) -> list[Event]:
    """One poll: ``GET /events?after=N`` on ``conn``; return the events of the answer.

    Raises:
        ConnectionError: if the server answers anything but 200.
        ValueError: if the body is not a JSON array of events.
    """
    conn.request("GET", f"/events?after={after}")
    response = conn.getresponse()
    body = response.read()
    if response.status != 200:
        raise ConnectionError(f"poll failed: HTTP {response.status} {body[:80]!r}")
    return decode_batch(body)


def receive_by_polling(
    port: int,
    source: TickSchedule,
    counter: ByteCounter,
    *,
    interval: float | None,
    timeout: float = CLIENT_TIMEOUT,
) -> Receipt:
    """Poll ``127.0.0.1:port`` until all events arrived; start the stream once connected.

    With an ``interval`` (short polling) the polls keep a fixed-rate schedule (poll k at
    the first poll + k * interval). With None (long polling) the next poll goes out as
    soon as an answer arrives, and the socket waits a whole ``HOLD`` longer, since the
    server may hold each poll that long.

    Raises:
        ValueError: if ``interval`` is not positive.
        TimeoutError: if the events do not all arrive within the stream duration + ``timeout``.
    """
    if interval is not None and not interval > 0:
        raise ValueError(f"interval must be positive seconds, got {interval!r}")
    wait = timeout if interval is not None else HOLD + timeout
    conn = CountingHTTPConnection(HOST, port, counter, wait)
    first_poll: list[float] = []  # when the first poll went out

    def poll(receipt: Receipt) -> list[Event]:
        """One poll, after its turn on the schedule (with an ``interval``)."""
        if not first_poll:
            first_poll.append(source.clock())
        elif interval is not None:
            pause = first_poll[0] + receipt.requests * interval - source.clock()
            if pause > 0:
                time.sleep(pause)
        events = get_events(conn, receipt.seqs[-1] if receipt.seqs else -1)
        receipt.requests += 1
        return events

    name = "short polling" if interval is not None else "long polling"
    try:
        conn.connect()
        return receive_stream(name, source, counter, poll, timeout=timeout)
    finally:
        conn.close()
