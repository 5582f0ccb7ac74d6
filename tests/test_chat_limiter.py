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


def test_charged_attempts_past_the_free_ones_make_every_node_wait(make):
    """A charged key (a name) counts each attempt as a failure before its secret is
    checked: with 2 free, the 3rd is still let through and starts a 1 s delay."""

    async def body():
        a, b = make(), make()
        name = ("name:ana",)
        assert [await node.login_attempt(name, ()) for node in (a, b, a)] == [0, 0, 0]
        assert 0.5 < await b.login_attempt(name, ()) <= 1.0  # waits; counted nothing
        await a.login_succeeded(name)
        assert await b.login_attempt(name, ()) == 0
        await a.close()
        await b.close()

    run(body())


def test_guesses_at_one_name_sent_at_once_are_counted_one_by_one(make):
    """Issue 24: twenty guesses at once from twenty hosts, alternating two nodes, get
    the free ones and one more checked, not twenty (the check and the charge are one
    step)."""

    async def body():
        a, b = make(), make()
        waits = await asyncio.gather(
            *(
                n.login_attempt(("name:ana",), (f"addr:10.0.0.{i}",))
                for i, n in enumerate((a, b) * 10)
            )
        )
        assert waits.count(0) == 3  # login_free=2, plus the one that starts the delay
        await a.close()
        await b.close()

    run(body())


def test_a_held_key_lets_logins_pass_together_until_it_has_failed(make):
    """Many people behind one NAT log in at once; once the address has a wrong secret,
    its attempts go one at a time, and the failures it lands make it wait."""

    async def body():
        a, b = make(), make()
        host = ("addr:10.0.0.1",)
        assert [await n.login_attempt((), host) for n in (a, b) * 5] == [0] * 10  # a NAT
        for n in (a, b) * 5:
            await n.login_release(host)
        assert await a.login_attempt((), host) == 0
        await b.login_failed((), host)  # one wrong secret
        assert await a.login_attempt((), host) == 0
        assert await b.login_attempt((), host) > 0  # one in flight at a time now
        await a.login_failed((), host)  # 2 failures: still free
        assert await b.login_attempt((), host) == 0
        await b.login_failed((), host)  # the 3rd starts the delay
        assert 0.5 < await a.login_attempt((), host) <= 1.0
        await a.login_succeeded(host)
        assert await b.login_attempt((), host) == 0
        await a.close()
        await b.close()

    run(body())


def test_a_refund_takes_back_an_attempt_that_was_never_checked(make):
    async def body():
        a, b = make(), make()
        name = ("name:bia",)
        assert [await a.login_attempt(name, ()) for _ in range(3)] == [0, 0, 0]
        await b.login_refund(name)  # the 3rd was refused for load: it did not count
        await b.login_refund(name)
        assert [await a.login_attempt(name, ()) for _ in range(2)] == [0, 0]
        assert await a.login_attempt(name, ()) > 0
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
