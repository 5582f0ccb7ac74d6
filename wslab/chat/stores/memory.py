"""The in-memory stores: today's behaviour for notebooks, the simulation and the
property tests. Nothing survives the process; every coroutine returns without
suspending, so a synchronous caller can drive them (see :mod:`wslab.chat.model.chat`)."""

from __future__ import annotations

import itertools
import secrets
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Collection

from ..errors import ReusedId
from ..rules.messages import Kind, Message, fingerprint
from ..rules.ratelimit import KeyedBuckets, LoginThrottle
from ..rules.wire import RESEND_SECONDS
from . import Deliver, LogState, Lost, Outage, check_retention

__all__ = ["MemoryCredentials", "MemoryLimiter", "MemoryLog"]


class MemoryLog:
    """A bounded deque of the newest messages; offsets are contiguous from 1.

    Args:
        retention: how many messages are kept.
        epoch: identity of this log's offsets; a fresh random one when omitted.
        clock: seconds (monotonic), to forget the lines' ids after
            :data:`~wslab.chat.rules.wire.RESEND_SECONDS`.
    """

    ordered = True  # appends are stored as they are called

    def __init__(
        self,
        retention: int = 1000,
        *,
        epoch: str | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if epoch is None:
            epoch = secrets.token_hex(16)
        elif not isinstance(epoch, str) or not epoch:
            raise ValueError(f"epoch must be a non-empty string, not {epoch!r}")
        self._retention = check_retention(retention)
        self._epoch = epoch
        self._history: deque[Message] = deque(maxlen=retention)
        self._newest = 0
        self._deliver: Deliver | None = None
        self._clock = clock
        # (sender, client_id) -> (offset, when, fingerprint), oldest first: the ids of
        # the last RESEND_SECONDS.
        self._ids: OrderedDict[tuple[str, str], tuple[int, float, str]] = OrderedDict()

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

    async def append(
        self, kind: Kind, sender: str, to: str | None, text: str, client_id: str | None = None
    ) -> int:
        now = self._clock()
        while self._ids and now - next(iter(self._ids.values()))[1] > RESEND_SECONDS:
            self._ids.popitem(last=False)
        said = fingerprint(kind, to, text)
        if client_id is not None:
            first = self._ids.get((sender, client_id))
            if first is not None:
                if first[2] != said:
                    raise ReusedId()
                return first[0]  # sent again: stored (and delivered) once
        self._newest += 1
        message = Message(kind, self._newest, sender, to, text, client_id)
        self._history.append(message)
        if client_id is not None:
            self._ids[(sender, client_id)] = (message.offset, now, said)
        if self._deliver is not None:
            self._deliver((message,))
        return message.offset

    async def read_after(
        self, offset: int, limit: int | None = None
    ) -> tuple[LogState, list[Message]]:
        kept = max(0, min(self._newest - offset, len(self._history)))
        take = kept if limit is None else min(kept, limit)
        start = len(self._history) - kept
        if kept <= start:  # nearer the newest end: walk from there, O(kept)
            found = list(itertools.islice(reversed(self._history), kept - take, kept))
            found.reverse()
        else:  # nearer the oldest end: O(start + take)
            found = list(itertools.islice(self._history, start, start + take))
        return self.state, found

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
    """Registered users in dicts: name -> record, skeleton -> name, and the names not
    used since they were registered -> when (``clock``: wall-clock seconds)."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._records: dict[str, str] = {}
        self._skeletons: dict[str, str] = {}
        self._unused: dict[str, float] = {}

    async def lookup(self, user: str) -> str | None:
        return self._records.get(user)

    async def similar(self, skeleton: str) -> str | None:
        return self._skeletons.get(skeleton)

    async def register(self, user: str, skeleton: str, record: str) -> str | None:
        if user in self._records:
            return user
        holder = self._skeletons.get(skeleton)
        if holder is not None:
            return holder
        self._records[user] = record
        self._skeletons[skeleton] = user
        self._unused[user] = self._clock()
        return None

    async def used(self, user: str) -> None:
        self._unused.pop(user, None)

    async def expire(self, age: float) -> int:
        before = self._clock() - age
        old = [user for user, when in self._unused.items() if when < before]
        for user in old:
            del self._unused[user]
            del self._records[user]
        self._skeletons = {k: v for k, v in self._skeletons.items() if v in self._records}
        return len(old)

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

    async def login_attempt(self, charged: Collection[str], held: Collection[str]) -> float:
        return self._throttle.attempt(charged, held, self._clock())

    async def login_failed(self, charged: Collection[str], held: Collection[str]) -> float:
        now = self._clock()
        self._throttle.failed(held, now)
        return self._throttle.wait([*charged, *held], now)

    async def login_release(self, held: Collection[str]) -> None:
        self._throttle.release(held, self._clock())

    async def login_refund(self, charged: Collection[str]) -> None:
        self._throttle.refund(charged, self._clock())

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
