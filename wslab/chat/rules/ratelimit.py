"""Rate limits and login throttling, pure (the caller passes the clock), so every rule
is tested without waiting: a token bucket, buckets shared per key, and a growing delay
after wrong secrets.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable

__all__ = ["KeyedBuckets", "LoginThrottle", "TokenBucket"]


class TokenBucket:
    """Allows ``rate`` events per second on average and bursts of up to ``burst``.

    Raises:
        ValueError: if ``rate`` is not positive or ``burst`` is below 1.
    """

    __slots__ = ("rate", "burst", "_tokens", "_last")

    def __init__(self, rate: float, burst: int, now: float) -> None:
        if not rate > 0 or burst < 1:
            raise ValueError(f"rate deve ser > 0 e burst >= 1, não {rate!r} e {burst!r}.")
        self.rate = rate
        self.burst = burst
        self._tokens = float(burst)
        self._last = now

    def peek(self, now: float) -> bool:
        """Whether a token is there now (refilling, spending nothing)."""
        elapsed = max(0.0, now - self._last)
        self._tokens = min(self.burst, self._tokens + elapsed * self.rate)
        self._last = max(self._last, now)
        return self._tokens >= 1

    def allow(self, now: float) -> bool:
        """Spend one token if there is one; ``now`` never goes back in time."""
        if self.peek(now):
            self._tokens -= 1
            return True
        return False

    def charge(self, cost: float, now: float) -> bool:
        """Spend ``cost`` tokens even into debt (what was read is already paid for);
        whether the bucket is still out of debt."""
        self.peek(now)
        self._tokens -= cost
        return self._tokens >= 0

    def seconds_until(self, tokens: float) -> float:
        """Seconds until the bucket holds ``tokens`` again (from its last update)."""
        return max(0.0, (min(tokens, self.burst) - self._tokens) / self.rate)


class KeyedBuckets:
    """One :class:`TokenBucket` per key (a user, an address), shared by every session
    and connection of that key, so reconnecting never refills it.

    At most ``max_keys`` buckets are kept; the least recently used goes first (a bucket
    untouched for ``burst / rate`` seconds is full again, so forgetting it changes
    nothing). Memory: about 200 bytes per key.
    """

    def __init__(self, rate: float, burst: int, max_keys: int = 100_000) -> None:
        TokenBucket(rate, burst, 0.0)  # validates rate and burst
        self.rate, self.burst, self.max_keys = rate, burst, max_keys
        self._buckets: OrderedDict[str, TokenBucket] = OrderedDict()

    def _bucket(self, key: str, now: float) -> TokenBucket:
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = TokenBucket(self.rate, self.burst, now)
            if len(self._buckets) > self.max_keys:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(key)
        return bucket

    def allow(self, keys: Iterable[str], now: float) -> bool:
        """Spend one token from the bucket of every key, only if each has one."""
        buckets = [self._bucket(key, now) for key in keys]
        if all(b.peek(now) for b in buckets):
            for b in buckets:
                b.allow(now)
            return True
        return False


class LoginThrottle:
    """Wrong secrets per key (a name, an address): after ``free`` failures in a row,
    each next attempt must wait ``base * 2**k`` seconds (k = failures past ``free``),
    up to ``cap``. A success clears the key.

    At most ``max_keys`` keys are kept, least recently failed first out.
    """

    def __init__(
        self, free: int = 5, base: float = 1.0, cap: float = 300.0, max_keys: int = 100_000
    ) -> None:
        if free < 0 or not base > 0 or cap < base:
            raise ValueError(f"need free >= 0 and 0 < base <= cap: {free}, {base}, {cap}")
        self.free, self.base, self.cap, self.max_keys = free, base, cap, max_keys
        self._failures: OrderedDict[str, tuple[int, float]] = OrderedDict()

    def wait(self, keys: Iterable[str], now: float) -> float:
        """Seconds before any of ``keys`` may try again (0 when all may now)."""
        waits = [self._failures.get(key, (0, now))[1] - now for key in keys]
        return max(0.0, *waits)

    def failed(self, keys: Iterable[str], now: float) -> None:
        for key in keys:
            count = self._failures.pop(key, (0, now))[0] + 1
            past = count - self.free - 1
            delay = 0.0 if past < 0 else min(self.cap, self.base * 2.0 ** min(past, 64))
            self._failures[key] = (count, now + delay)
            if len(self._failures) > self.max_keys:
                self._failures.popitem(last=False)

    def succeeded(self, keys: Iterable[str]) -> None:
        for key in keys:
            self._failures.pop(key, None)
