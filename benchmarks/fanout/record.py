"""What one load generator run measured: the record the load generator prints and the driver reads.

One dataclass, so both sides agree on the fields and their types; it travels as
one JSON object on the load generator's stdout (:meth:`RunRecord.to_json`,
:meth:`RunRecord.from_json`) and is kept whole in ``chat_fanout.json``'s ``runs``.
"""

from __future__ import annotations

import dataclasses
import json

__all__ = ["RunRecord"]


@dataclasses.dataclass
class RunRecord:
    """One server kind, N sessions, one closed-loop measurement (see ``loadgen``)."""

    server: str
    sessions: int
    window: int  # messages in flight
    text_bytes: int
    setup_s: float  # opening and registering every session
    # throughput and latency, over the measured interval
    deliveries: int
    seconds: float
    deliveries_per_s: float
    messages_per_s: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    # CPU share (1.0 = one core) during the measured interval; None without /proc
    loadgen_cpu: float
    server_cpu: float | None
    other_cpu: float | None  # every other process on the machine
    steal_cpu: float | None
    # the server's resident memory: before any session, with all N idle, at the end of the load
    rss_base_bytes: int | None
    rss_idle_bytes: int | None
    rss_load_bytes: int | None
    rss_peak_bytes: int | None
    # correctness: every session, every message, once, in order
    messages_sent: int
    messages_complete: int
    missing_deliveries: int
    gaps: int
    repeats: int
    sessions_closed: int
    frame_bytes: int  # size on the wire of one delivered message frame
    unexpected_frames: int
    unexpected_examples: list[str]
    # set by the driver
    loop: str | None = None  # the server's event loop
    repeat: int = 0
    attempts: int = 1

    @property
    def loss(self) -> int:
        """Deliveries not made exactly once and in order."""
        return self.missing_deliveries + self.gaps + self.repeats

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self))

    @classmethod
    def from_json(cls, text: str) -> RunRecord:
        return cls(**json.loads(text))
