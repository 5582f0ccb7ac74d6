"""Rate limits and the login throttle (wslab.chat.rules.ratelimit), with a clock the test
passes: a token bucket, buckets per key, the growing wait after wrong secrets."""

import pytest

from wslab.chat.rules.ratelimit import KeyedBuckets, LoginThrottle, TokenBucket


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


def test_token_bucket_peek_spends_nothing():
    bucket = TokenBucket(rate=1.0, burst=1, now=0.0)
    assert bucket.peek(0.0) and bucket.peek(0.0)
    assert bucket.allow(0.0) and not bucket.peek(0.0)


def test_token_bucket_charge_goes_into_debt_and_says_when_it_is_paid():
    bucket = TokenBucket(rate=10.0, burst=5, now=0.0)
    assert bucket.charge(3, 0.0) is True  # 2 left
    assert bucket.charge(4, 0.0) is False  # 2 in debt: what was read is paid for
    assert bucket.seconds_until(1) == pytest.approx(0.3)  # 3 tokens at 10/s
    assert bucket.seconds_until(50) == pytest.approx(0.7)  # never more than the burst
    assert not bucket.peek(0.25) and bucket.peek(0.31)


# -- buckets per key ----------------------------------------------------------------------


def test_keyed_buckets_spend_from_every_key_only_if_each_has_a_token():
    buckets = KeyedBuckets(rate=1.0, burst=2)
    assert buckets.allow(("user:ana", "addr:1"), 0.0)
    assert buckets.allow(("user:ana", "addr:1"), 0.0)
    assert not buckets.allow(("user:ana", "addr:1"), 0.0)
    # addr:1 is empty: bia is refused there, and her own bucket keeps its tokens
    assert not buckets.allow(("user:bia", "addr:1"), 0.0)
    assert buckets.allow(("user:bia", "addr:2"), 0.0)
    assert buckets.allow(("user:bia", "addr:3"), 0.0)
    assert not buckets.allow(("user:bia", "addr:4"), 0.0)


def test_keyed_buckets_are_shared_by_every_session_of_a_key():
    """Reconnecting is no way to a fresh burst: the bucket is the key's."""
    buckets = KeyedBuckets(rate=1.0, burst=3)
    spent = [buckets.allow(("ana",), 0.0) for _ in range(3)]
    assert spent == [True] * 3 and not buckets.allow(("ana",), 0.5)
    assert buckets.allow(("ana",), 1.0)


def test_keyed_buckets_forget_the_least_recently_used_key_past_max_keys():
    buckets = KeyedBuckets(rate=0.001, burst=1, max_keys=2)
    assert buckets.allow(("a",), 0.0) and buckets.allow(("b",), 0.0)
    assert not buckets.allow(("a",), 0.0)  # a is used again: b is now the oldest
    assert buckets.allow(("c",), 0.0)  # a third key: b is forgotten
    assert not buckets.allow(("a",), 0.0)  # a was kept, still empty
    assert buckets.allow(("b",), 0.0)  # b starts again full (as it would be in time)


@pytest.mark.parametrize("rate, burst", [(0, 1), (1, 0)])
def test_keyed_buckets_refuse_nonsense(rate, burst):
    with pytest.raises(ValueError):
        KeyedBuckets(rate, burst)


# -- the login throttle -------------------------------------------------------------------


def test_wrong_secrets_past_the_free_ones_wait_twice_as_long_each_time_up_to_the_cap():
    throttle = LoginThrottle(free=2, base=1.0, cap=5.0)
    waits = []
    for _ in range(7):
        throttle.failed(["name:ana"], 100.0)
        waits.append(throttle.wait(["name:ana"], 100.0))
    assert waits == [0.0, 0.0, 1.0, 2.0, 4.0, 5.0, 5.0]
    assert throttle.wait(["name:ana"], 104.0) == pytest.approx(1.0)  # time passes
    assert throttle.wait(["name:ana"], 106.0) == 0.0


def test_a_success_clears_the_key_and_the_wait_is_the_longest_of_the_keys():
    throttle = LoginThrottle(free=0, base=1.0, cap=60.0)
    throttle.failed(["name:ana", "addr:1"], 0.0)
    throttle.failed(["addr:1"], 0.0)
    assert throttle.wait(["name:ana"], 0.0) == 1.0
    assert throttle.wait(["name:ana", "addr:1"], 0.0) == 2.0
    assert throttle.wait(["name:bia"], 0.0) == 0.0
    throttle.succeeded(["addr:1"])
    assert throttle.wait(["name:ana", "addr:1"], 0.0) == 1.0


def test_the_throttle_keeps_at_most_max_keys():
    throttle = LoginThrottle(free=0, base=1.0, cap=60.0, max_keys=2)
    for key in ("a", "b", "c"):
        throttle.failed([key], 0.0)
    assert [throttle.wait([key], 0.0) for key in ("a", "b", "c")] == [0.0, 1.0, 1.0]


@pytest.mark.parametrize("free, base, cap", [(-1, 1.0, 2.0), (1, 0.0, 2.0), (1, 3.0, 2.0)])
def test_the_throttle_refuses_nonsense(free, base, cap):
    with pytest.raises(ValueError):
        LoginThrottle(free, base, cap)
