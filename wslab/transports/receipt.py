"""What a client observed: which events arrived, how late, and after how many requests."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from .accounting import ByteCounter
from .events import Event, TickSchedule, stream_deadline


@dataclass
class Receipt:
    """Events as the client received them, in arrival order.

    ``origin`` is the clock time at which event 0 was due; the latency of an event
    is its arrival time minus ``origin + event.offset``. Client and servers share one
    process and one monotonic clock, so no clock synchronization is involved.
    """

    origin: float
    seqs: list[int] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)
    requests: int = 0
    #: (sent, received) when the stream started: handshake or headers, nothing else yet
    setup_bytes: tuple[int, int] = (0, 0)
    #: (sent, received) right after the last event: what remains is the closing
    stream_end_bytes: tuple[int, int] = (0, 0)

    def receive(self, event: Event, now: float) -> None:
        """Record that ``event`` arrived at clock time ``now``."""
        self.seqs.append(event.seq)
        self.latencies.append(now - (self.origin + event.offset))


def receive_stream(
    name: str,
    source: TickSchedule,
    counter: ByteCounter,
    read: Callable[[Receipt], list[Event]],
    *,
    timeout: float,
    requests: int = 0,
) -> Receipt:
    """What every client of the experiment does once connected: start the stream (if it
    is not yet), then ``read`` until every event arrived. Each call of ``read`` returns
    what came (a poll's answer, one frame, one line of a stream: maybe nothing), stamped
    with the clock when it returns. ``requests``: those made to connect (1 for the
    Upgrade or the stream's GET); a poll counts its own in the receipt.

    Raises:
        TimeoutError: if the events do not all arrive within the stream duration + ``timeout``.
    """
    if not source.started:
        source.start()
    receipt = Receipt(origin=source.origin, requests=requests, setup_bytes=counter.snapshot())
    deadline = stream_deadline(source, timeout)
    while len(receipt.seqs) < source.count:
        if source.clock() > deadline:
            raise TimeoutError(
                f"{name}: {len(receipt.seqs)} of {source.count} events arrived in time"
            )
        events = read(receipt)
        now = source.clock()
        for event in events:
            receipt.receive(event, now)
    receipt.stream_end_bytes = counter.snapshot()
    return receipt
