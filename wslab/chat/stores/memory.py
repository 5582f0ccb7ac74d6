"""The in-memory stores: today's behaviour for notebooks, the simulation and the
property tests. Nothing survives the process; every coroutine returns without
suspending, so a synchronous caller can drive them (see :mod:`wslab.chat.model.chat`)."""

from __future__ import annotations

import itertools
import secrets
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Collection

from ..rules.messages import Kind, Message
from ..rules.ratelimit import KeyedBuckets, LoginThrottle
from . import Deliver, LogState, Lost, Outage, check_retention

__all__ = ["MemoryCredentials", "MemoryLimiter", "MemoryLog"]


class MemoryLog:
    """A bounded deque of the newest messages; offsets are contiguous from 1.

    Args:
        retention: how many messages are kept.
        epoch: identity of this log's offsets; a fresh random one when omitted.
    """

    ordered = True  # appends are stored as they are called

    def __init__(self, retention: int = 1000, *, epoch: str | None = None) -> None:
        if epoch is None:
            epoch = secrets.token_hex(16)
        elif not isinstance(epoch, str) or not epoch:
            raise ValueError(f"epoch must be a non-empty string, not {epoch!r}")
        self._retention = check_retention(retention)
        self._epoch = epoch
        self._history: deque[Message] = deque(maxlen=retention)
        self._newest = 0
        self._deliver: Deliver | None = None

    @property
    def retention(self) -> int:
        return self._retention

    @property
    def state(self) -> LogState:
        return LogState(self._epoch, self._newest, self._newest - len(self._history) + 1)

    async def start(
        self, deliver: Deliver, lost: Lost | None = None, outage: Outage | None = None
    ) -> LogState:
        """``lost`` and ``outage`` are never called: nothing happens behind this log's
        back."""
        self._deliver = deliver
        return self.state

    async def append(self, kind: Kind, sender: str, to: str | None, text: str) -> int:
        self._newest += 1
        message = Message(kind, self._newest, sender, to, text)
        self._history.append(message)
        if self._deliver is not None:
            self._deliver((message,))
        return message.offset

    async def read_after(self, offset: int) -> tuple[LogState, list[Message]]:
        kept = max(0, min(self._newest - offset, len(self._history)))
        replay = list(itertools.islice(reversed(self._history), kept))
        replay.reverse()
        return self.state, replay

    async def recent(self, user: str, count: int) -> tuple[LogState, list[Message]]:
        visible = (m for m in reversed(self._history) if m.visible_to(user))
        found = list(itertools.islice(visible, count))
        found.reverse()
        return self.state, found

    async def check(self) -> None:
        return None  # memory always takes an append

    async def close(self) -> None:
        self._deliver = None


class MemoryCredentials:
    """Registered users in a dict."""

    def __init__(self) -> None:
        self._records: dict[str, str] = {}

    async def lookup(self, user: str) -> str | None:
        return self._records.get(user)

    async def register(self, user: str, record: str) -> bool:
        return self._records.setdefault(user, record) is record

    async def count(self) -> int:
        return len(self._records)

    async def close(self) -> None:
        pass


class MemoryLimiter:
    """The limits' counts of one node, in memory (:mod:`wslab.chat.rules.ratelimit`).

    Args:
        clock: monotonic seconds.
        login_free, login_cap: see :class:`wslab.chat.rules.ratelimit.LoginThrottle`.
        max_pairs: (name, address) pairs remembered, least recent out first.
    """

    def __init__(
        self,
        clock: Callable[[], float] = time.monotonic,
        *,
        login_free: int = 5,
        login_cap: float = 300.0,
        max_pairs: int = 100_000,
    ) -> None:
        self._clock = clock
        self._buckets: dict[tuple[float, int], KeyedBuckets] = {}
        self._throttle = LoginThrottle(free=login_free, cap=login_cap)
        self._known: OrderedDict[tuple[str, str], None] = OrderedDict()
        self._max_pairs = max_pairs

    async def allow(self, key: str, rate: float, burst: int) -> bool:
        buckets = self._buckets.get((rate, burst))
        if buckets is None:
            buckets = self._buckets[(rate, burst)] = KeyedBuckets(rate, burst)
        return buckets.allow((key,), self._clock())

    async def login_wait(self, keys: Collection[str]) -> float:
        return self._throttle.wait(keys, self._clock())

    async def login_failed(self, keys: Collection[str]) -> None:
        self._throttle.failed(keys, self._clock())

    async def login_succeeded(self, keys: Collection[str]) -> None:
        self._throttle.succeeded(keys)

    async def knows(self, name: str, address: str) -> bool:
        return (name, address) in self._known

    async def remember(self, name: str, address: str) -> None:
        self._known[(name, address)] = None
        self._known.move_to_end((name, address))
        if len(self._known) > self._max_pairs:
            self._known.popitem(last=False)

    async def close(self) -> None:
        pass
