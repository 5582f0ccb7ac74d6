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


def test_wrong_secrets_past_the_free_ones_make_every_node_wait(make):
    async def body():
        a, b = make(), make()
        keys = ("name:ana", "addr:10.0.0.1")
        for _ in range(2):  # the free failures
            await a.login_failed(keys)
        assert await b.login_wait(keys) == 0
        await a.login_failed(keys)  # the first past them: 1 s
        assert 0.5 < await b.login_wait(["name:ana"]) <= 1.0
        await b.login_failed(keys)  # then 2 s
        assert 1.5 < await a.login_wait(["addr:10.0.0.1"]) <= 2.0
        for _ in range(5):
            await b.login_failed(keys)
        assert 7.0 < await a.login_wait(keys) <= 8.0  # capped
        await a.login_succeeded(keys)
        assert await b.login_wait(keys) == 0
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
