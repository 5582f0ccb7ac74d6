"""The event stream every transport delivers: numbered, timestamped, fixed width.

Event ``seq`` is due ``seq / rate`` seconds after the stream starts. Nothing runs in
the background: a server asks which events are due by now, or waits until the next
one is, so all four servers serve the very same stream. Each event is encoded as a
JSON object padded with spaces to a fixed width, so byte counts do not depend on the
values of ``seq`` or of the timestamp, and the runs are comparable byte for byte.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

MAX_EVENTS = 999_999  # six digits of seq keep the encoding fixed width
MAX_OFFSET = 9_999.0  # seconds; eleven characters of "%11.6f"


@dataclass(frozen=True)
class Event:
    """One event: its number and when it is due, in seconds after the stream starts."""

    seq: int
    offset: float

    def encode(self) -> str:
        """Return the event as fixed-width JSON (44 characters).

        Raises:
            ValueError: if ``seq`` or ``offset`` do not fit the fixed width.
        """
        if not 0 <= self.seq <= MAX_EVENTS:
            raise ValueError(f"seq must be in 0..{MAX_EVENTS}, got {self.seq}")
        if not 0.0 <= self.offset <= MAX_OFFSET:
            raise ValueError(f"offset must be in 0..{MAX_OFFSET} s, got {self.offset}")
        return f'{{"type":"tick","seq":{self.seq:6d},"t":{self.offset:11.6f}}}'

    @classmethod
    def decode(cls, text: str | bytes) -> Event:
        """Parse what :meth:`encode` produced.

        Raises:
            ValueError: if ``text`` is not a JSON tick event.
        """
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"not a tick event: {text!r:.80}") from exc
        return cls.from_object(obj)

    @classmethod
    def from_object(cls, obj: object) -> Event:
        """Build an event from an already parsed JSON object.

        Raises:
            ValueError: if ``obj`` is not a tick event.
        """
        if not isinstance(obj, dict) or obj.get("type") != "tick":
            raise ValueError(f"not a tick event: {obj!r:.80}")
        try:
            return cls(seq=int(obj["seq"]), offset=float(obj["t"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"not a tick event: {obj!r:.80}") from exc


def encode_batch(events: list[Event]) -> bytes:
    """Encode events as one JSON array, the body of a polling response."""
    return ("[" + ",".join(event.encode() for event in events) + "]").encode()


def decode_batch(body: bytes) -> list[Event]:
    """Parse a polling response body.

    Raises:
        ValueError: if ``body`` is not a JSON array of tick events.
    """
    try:
        items = json.loads(body)
    except json.JSONDecodeError as exc:
        raise ValueError(f"polling body is not JSON: {body!r:.80}") from exc
    if not isinstance(items, list):
        raise ValueError(f"polling body is not a JSON array: {body!r:.80}")
    return [Event.from_object(item) for item in items]


class TickSchedule:
    """``count`` events due at a fixed ``rate`` per second once :meth:`start` is called.

    Thread-safe: servers in several threads may query and wait at the same time.
    """

    def __init__(
        self, count: int, rate: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        """Raises ``ValueError`` if ``count`` or ``rate`` is out of range."""
        if not isinstance(count, int) or not 1 <= count <= MAX_EVENTS:
            raise ValueError(f"count must be an integer in 1..{MAX_EVENTS}, got {count!r}")
        if not isinstance(rate, (int, float)) or not rate > 0:
            raise ValueError(f"rate must be a positive number of events per second, got {rate!r}")
        if (count - 1) / rate > MAX_OFFSET:
            raise ValueError(
                f"the stream would last more than {MAX_OFFSET} s; raise rate or lower count"
            )
        self.count = count
        self.rate = float(rate)
        self.clock = clock
        self._origin: float | None = None
        self._started = threading.Event()
        self._lock = threading.Lock()

    def start(self, at: float | None = None) -> None:
        """Start the stream now (or at clock time ``at``): event 0 is due then.

        Raises:
            RuntimeError: if the stream was already started.
        """
        with self._lock:
            if self._origin is not None:
                raise RuntimeError("the event stream was already started")
            self._origin = self.clock() if at is None else at
        self._started.set()

    @property
    def started(self) -> bool:
        return self._started.is_set()

    @property
    def origin(self) -> float:
        """Clock time at which event 0 is due. Raises ``RuntimeError`` before :meth:`start`."""
        if self._origin is None:
            raise RuntimeError("the event stream has not started")
        return self._origin

    def event(self, seq: int) -> Event:
        """Return event ``seq``. Raises ``ValueError`` if there is no such event."""
        if not 0 <= seq < self.count:
            raise ValueError(f"no event {seq}: the stream has events 0..{self.count - 1}")
        return Event(seq=seq, offset=seq / self.rate)

    def due_at(self, seq: int) -> float:
        """Clock time at which event ``seq`` is due (after :meth:`start`)."""
        return self.origin + self.event(seq).offset

    def ready_after(self, after: int, now: float | None = None) -> list[Event]:
        """Events numbered above ``after`` that are due by ``now`` (default: the clock)."""
        if not self.started:
            return []
        now = self.clock() if now is None else now
        ready = []
        seq = max(after + 1, 0)
        while seq < self.count and self.due_at(seq) <= now:
            ready.append(self.event(seq))
            seq += 1
        return ready

    def wait_for(self, seq: int, stop: threading.Event, timeout: float) -> bool:
        """Block until event ``seq`` is due; return ``False`` if ``stop`` is set or time runs out.

        The wait is bounded by ``timeout`` seconds and wakes as soon as ``stop`` is set,
        so a server can always shut down promptly.
        """
        self.event(seq)  # validate before waiting
        deadline = self.clock() + timeout
        while not self._started.wait(min(0.01, max(deadline - self.clock(), 0.0))):
            if stop.is_set() or self.clock() >= deadline:
                return False
        due = self.due_at(seq)
        while True:
            now = self.clock()
            if now >= due:
                return not stop.is_set()
            if now >= deadline or stop.wait(min(due, deadline) - now):
                return False


CLIENT_TIMEOUT = 10.0  # seconds a client waits beyond the stream's own duration


def stream_deadline(source: TickSchedule, timeout: float) -> float:
    """Clock time by which a client must have every event: stream duration plus ``timeout``."""
    return source.clock() + (source.count - 1) / source.rate + timeout
