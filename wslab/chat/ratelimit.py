"""A token bucket: how many lines a session may send, on average and at once.

Pure (the caller passes the clock), so the rule is tested without waiting.
"""
from __future__ import annotations

__all__ = ["TokenBucket"]


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

    def allow(self, now: float) -> bool:
        """Spend one token if there is one; ``now`` never goes back in time."""
        elapsed = max(0.0, now - self._last)
        self._tokens = min(self.burst, self._tokens + elapsed * self.rate)
        self._last = now
        if self._tokens >= 1:
            self._tokens -= 1
            return True
        return False
