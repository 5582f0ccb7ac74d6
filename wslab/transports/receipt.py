"""What a client observed: which events arrived, how late, and after how many requests."""

from __future__ import annotations

from dataclasses import dataclass, field

from .events import Event


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
