"""Rate limits and the login throttle (wslab.chat.rules.ratelimit), with a clock the test
passes: a token bucket, buckets per key, the growing wait after wrong secrets."""

import pytest

from wslab.chat.rules.ratelimit import TokenBucket


def test_token_bucket_allows_a_burst_then_the_rate():
    bucket = TokenBucket(rate=2.0, burst=3, now=0.0)
    assert [bucket.allow(0.0) for _ in range(4)] == [True, True, True, False]
    assert bucket.allow(0.25) is False  # half a token
    assert bucket.allow(0.5) is True  # one token after 0.5 s at 2/s
    assert [bucket.allow(100.0) for _ in range(4)] == [True, True, True, False]  # capped


def test_token_bucket_ignores_a_clock_going_back():
    bucket = TokenBucket(rate=1.0, burst=1, now=10.0)
    assert bucket.allow(10.0) is True
    assert bucket.allow(5.0) is False


@pytest.mark.parametrize("rate, burst", [(0, 1), (-1, 1), (1, 0)])
def test_token_bucket_refuses_nonsense(rate, burst):
    with pytest.raises(ValueError):
        TokenBucket(rate, burst, now=0.0)
