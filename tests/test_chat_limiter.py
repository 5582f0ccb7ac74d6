"""The limiter contract (wslab.chat.stores.Limiter), run against the in-memory limiter
and the Redis one on a real Valkey: the same buckets and the same login throttle,
whichever node counts. Two Redis limiters on one Valkey share their counts."""

import asyncio

import pytest

from wslab.chat.stores.memory import MemoryLimiter
from wslab.chat.stores.redis import RedisLimiter


def run(coroutine, timeout: float = 20.0):
    return asyncio.run(asyncio.wait_for(coroutine, timeout))


@pytest.fixture(params=["memory", "redis"])
def make(request):
    """A factory of limiters that share their counts: the same object in memory (one
    node), new clients of the same Valkey for Redis (several nodes)."""
    if request.param == "memory":
        shared = MemoryLimiter(login_free=2, login_cap=8.0)
        return lambda: shared
    url = request.getfixturevalue("valkey_url")
    return lambda: RedisLimiter(url, login_free=2, login_cap=8.0)


def test_a_bucket_allows_its_burst_then_refuses(make):
    async def body():
        limiter = make()
        allowed = [await limiter.allow("line:ana", 0.001, 3) for _ in range(5)]
        assert allowed == [True, True, True, False, False]
        assert await limiter.allow("line:joao", 0.001, 3)  # another key, its own bucket
        await limiter.close()

    run(body())


def test_a_bucket_refills_at_its_rate(make):
    async def body():
        limiter = make()
        assert await limiter.allow("line:ana", 20.0, 1)
        assert not await limiter.allow("line:ana", 20.0, 1)
        await asyncio.sleep(0.1)  # 2 tokens' worth, capped at the burst of 1
        assert await limiter.allow("line:ana", 20.0, 1)
        assert not await limiter.allow("line:ana", 20.0, 1)
        await limiter.close()

    run(body())


def test_two_limiters_share_one_bucket(make):
    async def body():
        a, b = make(), make()
        allowed = [await node.allow("line:ana", 0.001, 4) for node in (a, b, a, b, a, b)]
        assert allowed.count(True) == 4
        await a.close()
        await b.close()

    run(body())


def test_attempts_past_the_free_ones_make_every_node_wait(make):
    """Each attempt is charged before its secret is checked (as a wrong one): with 2
    free, the 3rd is still let through and starts a 1 s delay, doubling to the cap."""

    async def body():
        a, b = make(), make()
        keys = ("name:ana", "addr:10.0.0.1")
        assert [await node.login_attempt(keys) for node in (a, b, a)] == [0, 0, 0]
        assert 0.5 < await b.login_attempt(["name:ana"]) <= 1.0  # waits; charged nothing
        assert 0.5 < await a.login_attempt(["addr:10.0.0.1"]) <= 1.0
        await a.login_succeeded(keys)
        assert await b.login_attempt(keys) == 0
        await a.close()
        await b.close()

    run(body())


def test_attempts_sent_at_once_are_counted_one_by_one(make):
    """Issue 24: twenty guesses at once, alternating two nodes, get the free ones and
    one more checked, not twenty (the check and the charge are one step)."""

    async def body():
        a, b = make(), make()
        keys = ("name:ana", "addr:10.0.0.9")
        waits = await asyncio.gather(*(n.login_attempt(keys) for n in (a, b) * 10))
        assert waits.count(0) == 3  # login_free=2, plus the one that starts the delay
        await a.close()
        await b.close()

    run(body())


def test_a_refund_takes_back_an_attempt_that_was_never_checked(make):
    async def body():
        a, b = make(), make()
        keys = ("name:bia",)
        assert [await a.login_attempt(keys) for _ in range(3)] == [0, 0, 0]
        await b.login_refund(keys)  # the 3rd was refused for load: it did not count
        await b.login_refund(keys)
        assert [await a.login_attempt(keys) for _ in range(2)] == [0, 0]
        assert await a.login_attempt(keys) > 0
        await a.close()
        await b.close()

    run(body())


def test_a_remembered_address_is_known_to_every_node(make):
    async def body():
        a, b = make(), make()
        assert not await b.knows("ana", "10.0.0.1")
        await a.remember("ana", "10.0.0.1")
        assert await b.knows("ana", "10.0.0.1")
        assert not await b.knows("ana", "10.0.0.2")
        assert not await b.knows("joao", "10.0.0.1")
        await a.close()
        await b.close()

    run(body())


def test_an_unreachable_redis_is_a_store_error():
    from wslab.chat.errors import StoreError
    from wslab.chat.testing.valkey import free_port

    async def body():
        limiter = RedisLimiter(f"redis://127.0.0.1:{free_port()}/0")
        with pytest.raises(StoreError, match="limites"):
            await limiter.allow("line:ana", 1.0, 1)
        await limiter.close()

    run(body())
