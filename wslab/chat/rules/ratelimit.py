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
            raise ValueError(f"need rate > 0 and burst >= 1, not {rate!r} and {burst!r}")
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
    """Wrong secrets per key (a name, a host, a network): after ``free`` failures in a
    row, each next attempt must wait ``base * 2**k`` seconds (k = failures past
    ``free``), up to ``cap``.

    Guesses sent at once must not all be checked before the first failure is counted
    (issue 24: 64 of 200 were), so :meth:`attempt` decides and counts in one step,
    before the secret is checked, in one of two ways per key:

    - *charged* keys (a name: one owner, who logs in once at a time) count the attempt
      as a failure at once; a right secret clears the key (:meth:`succeeded`), an
      attempt never checked (refused for load) is refunded (:meth:`refund`). Guesses
      at one name sent together get ``free + 1`` checks, from any number of addresses;
    - *held* keys (a host, a network: many people behind one NAT log in together)
      count the attempt as in flight: while a key has failures, it has one attempt in
      flight at most, so guesses from there go one at a time; with none, logins pass
      side by side. The outcome settles it (:meth:`failed`, :meth:`release`).

    A key with no failure for ``forget`` seconds (a day) starts again from zero. At
    most ``max_keys`` keys are kept, least recently used first out. Memory: ~150 bytes
    per key.
    """

    def __init__(
        self,
        free: int = 5,
        base: float = 1.0,
        cap: float = 300.0,
        max_keys: int = 100_000,
        forget: float = 86_400.0,
    ) -> None:
        if free < 0 or not base > 0 or cap < base:
            raise ValueError(f"need free >= 0 and 0 < base <= cap: {free}, {base}, {cap}")
        self.free, self.base, self.cap, self.max_keys = free, base, cap, max_keys
        self.forget = forget
        # key -> [failures, until, in flight] (the counts are whole numbers)
        self._keys: OrderedDict[str, list[float]] = OrderedDict()

    def wait(self, keys: Iterable[str], now: float) -> float:
        """Seconds before any of ``keys`` may try again (0 when all may now)."""
        return max(0.0, *(self._entry(key, now)[1] - now for key in keys))

    def attempt(self, charged: Iterable[str], held: Iterable[str], now: float) -> float:
        """Seconds before this attempt may be made, counting nothing; or 0, with the
        attempt counted (see the class docstring)."""
        charged, held = list(charged), list(held)
        wait = self.wait(charged + held, now)
        if wait > 0:
            return wait
        if any(e[0] > 0 and e[2] > 0 for e in (self._entry(k, now) for k in held)):
            return self.base  # one guess at a time from a key that has failed
        for key in charged:
            self._fail(key, now)
        for key in held:
            self._touch(key, now)[2] += 1
        return 0.0

    def failed(self, held: Iterable[str], now: float) -> None:
        """A held attempt had the wrong secret: it lands as a failure."""
        for key in held:
            self._release(key, now)
            self._fail(key, now)

    def release(self, held: Iterable[str], now: float) -> None:
        """A held attempt ended without a wrong secret (right, or never checked)."""
        for key in held:
            self._release(key, now)

    def refund(self, charged: Iterable[str], now: float) -> None:
        """Take back a charged attempt that was never checked (its delay restarts
        from ``now``)."""
        for key in charged:
            entry = self._touch(key, now)
            entry[0] = max(0, entry[0] - 1)
            entry[1] = now + self._delay(int(entry[0]))

    def succeeded(self, keys: Iterable[str]) -> None:
        """The secret was right: the keys' failures are forgotten (attempts in flight
        stay counted until they settle)."""
        for key in keys:
            entry = self._keys.get(key)
            if entry is not None:
                entry[0], entry[1] = 0, 0.0

    def _entry(self, key: str, now: float) -> list[float]:
        entry = self._keys.get(key)
        if entry is None:
            return [0, now, 0]
        if entry[0] and now - entry[1] > self.forget:
            entry[0], entry[1] = 0, now
        return entry

    def _touch(self, key: str, now: float) -> list[float]:
        entry = self._entry(key, now)
        self._keys[key] = entry
        self._keys.move_to_end(key)
        if len(self._keys) > self.max_keys:
            self._keys.popitem(last=False)
        return entry

    def _fail(self, key: str, now: float) -> None:
        entry = self._touch(key, now)
        entry[0] += 1
        entry[1] = now + self._delay(int(entry[0]))

    def _release(self, key: str, now: float) -> None:
        entry = self._touch(key, now)
        entry[2] = max(0, entry[2] - 1)

    def _delay(self, count: int) -> float:
        past = count - self.free - 1
        return 0.0 if past < 0 else min(self.cap, self.base * 2.0 ** min(past, 64))
