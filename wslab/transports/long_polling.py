"""Long polling: the server holds each request until an event is due, then answers.

The client re-asks as soon as an answer arrives, so an event waits only for the
round trip; each event (or batch of events due together) still pays a full HTTP
request and response header, over one keep-alive connection.
"""

from __future__ import annotations

from functools import partial

from .events import encode_batch
from .http_server import HOLD, BackgroundHTTPServer, EventHandler
from .short_polling import receive_by_polling


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


#: Long polling's client: polling with no interval (the next poll as soon as an answer
#: arrives), over a socket that waits a whole ``HOLD`` longer.
receive_by_long_polling = partial(receive_by_polling, interval=None)
