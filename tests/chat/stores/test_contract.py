"""The stores' contract (wslab.chat.stores), one suite for every implementation.

Each entry of ``FACTORIES`` is a function ``(request) -> open_stores`` where
``open_stores(retention)`` is a coroutine returning a fresh ``(log, credentials)``
pair on the store under test; calling it again must reach the *same* stored data
when the store outlives its objects (SQLite, Redis) and fresh data when it does not
(memory). To add a store, write such a factory (it may take fixtures through
``request.getfixturevalue``) and append it to ``FACTORIES``.

The Redis variant runs against a real Valkey started by
:class:`wslab.chat.testing.valkey.LocalValkey`, one per module, flushed between tests.
What only Redis does (several nodes on one Redis, its faults) is in ``redis/``.

The limiter contract (wslab.chat.stores.Limiter) runs against the in-memory limiter
and the Redis one on a real Valkey: the same buckets and the same login throttle,
whichever node counts. Two Redis limiters on one Valkey share their counts.
"""

from __future__ import annotations

import asyncio

import pytest
from chatclient import append_lines as say
from chatclient import run, started

from wslab.chat.rules.messages import Kind
from wslab.chat.stores.memory import MemoryCredentials, MemoryLimiter, MemoryLog
from wslab.chat.stores.redis import RedisCredentials, RedisLimiter, RedisLog
from wslab.chat.stores.sqlite import SqliteStore

PUBLIC, PRIVATE = Kind.PUBLIC, Kind.PRIVATE


def memory_stores(request):
    async def open_stores(retention):
        return MemoryLog(retention), MemoryCredentials()

    return open_stores


def redis_stores(request):
    url = request.getfixturevalue("valkey_url")

    async def open_stores(retention):
        return RedisLog(url, retention), RedisCredentials(url)

    return open_stores


def sqlite_stores(request):
    path = request.getfixturevalue("tmp_path") / "chat.db"

    async def open_stores(retention):
        store = SqliteStore(str(path), retention)
        return store.log, store.credentials

    return open_stores


FACTORIES = [memory_stores, sqlite_stores, redis_stores]


@pytest.fixture(params=FACTORIES, ids=lambda factory: factory.__name__.removesuffix("_stores"))
def open_stores(request):
    return request.param(request)


def test_an_empty_log_has_newest_0_and_oldest_1(open_stores):
    async def body():
        async with started(open_stores) as (log, _, _recorder):
            state, messages = await log.read_after(0)
            assert (state.newest, state.oldest, messages) == (0, 1, [])
            assert state.epoch and state.epoch == log.state.epoch
            state, messages = await log.recent("ana", 10)
            assert (state.newest, state.oldest, messages) == (0, 1, [])

    run(body())


def test_offsets_are_contiguous_from_1(open_stores):
    async def body():
        async with started(open_stores) as (log, _, recorder):
            offsets = await say(log, recorder, "ana: a", "joao: b", "ana>joao: c")
            assert offsets == [1, 2, 3]
            assert log.state.newest == 3

    run(body())


def test_offsets_are_never_reused_in_one_epoch(open_stores):
    """A second log on the same store either keeps the epoch and goes on counting, or
    has a new epoch (the store did not keep the first one's messages)."""

    async def body():
        async with started(open_stores) as (log, _, recorder):
            await say(log, recorder, "ana: a", "ana: b")
            first = log.state.epoch
        async with started(open_stores) as (log, _, recorder):
            state, kept = await log.read_after(0)
            offset = (await say(log, recorder, "ana: c"))[0]
            if state.epoch == first:
                assert [m.text for m in kept] == ["a", "b"]
                assert offset == 3
            else:
                assert kept == [] and offset == 1

    run(body())


def test_deliver_gets_every_message_once_in_offset_order(open_stores):
    async def body():
        async with started(open_stores, retention=100) as (log, _, recorder):

            async def writer(name):
                return [await log.append(PUBLIC, name, None, f"{name} {i}") for i in range(10)]

            results = await asyncio.gather(*(writer(f"u{n}") for n in range(5)))
            await recorder.upto(50)
            await asyncio.sleep(0.05)  # anything extra would show up now
            assert recorder.offsets() == list(range(1, 51))
            assert recorder.outages == recorder.lost == []  # a store that kept answering
            by_offset = {m.offset: m.text for m in recorder.seen}
            for n, offsets in enumerate(results):
                assert [by_offset[o] for o in offsets] == [f"u{n} {i}" for i in range(10)]

    run(body())


def test_a_delivery_carries_what_was_appended(open_stores):
    async def body():
        async with started(open_stores) as (log, _, recorder):
            await say(log, recorder, "ana: olá, ção 🎉", "ana>joao: só pra você")
            public, private = recorder.seen
            assert (public.kind, public.sender, public.to, public.text) == (
                PUBLIC,
                "ana",
                None,
                "olá, ção 🎉",
            )
            assert (private.kind, private.sender, private.to, private.text) == (
                PRIVATE,
                "ana",
                "joao",
                "só pra você",
            )

    run(body())


def test_retention_keeps_the_newest(open_stores):
    async def body():
        async with started(open_stores, retention=3) as (log, _, recorder):
            await say(log, recorder, *(f"ana: m{i}" for i in range(1, 8)))
            state, messages = await log.read_after(0)
            assert [m.offset for m in messages] == [5, 6, 7]
            assert (state.newest, state.oldest) == (7, 5)
            assert log.state[1:] == (7, 5)
            _, messages = await log.recent("ana", 10)
            assert [m.text for m in messages] == ["m5", "m6", "m7"]

    run(body())


def test_retention_0_keeps_nothing(open_stores):
    async def body():
        async with started(open_stores, retention=0) as (log, _, recorder):
            await say(log, recorder, "ana: a", "ana: b")
            assert recorder.offsets() == [1, 2]
            state, messages = await log.read_after(0)
            assert (state.newest, state.oldest, messages) == (2, 3, [])

    run(body())


def test_read_after_returns_what_follows_with_its_state(open_stores):
    async def body():
        async with started(open_stores) as (log, _, recorder):
            await say(log, recorder, "ana: a", "ana>joao: b", "bia: c", "bia: d")
            state, messages = await log.read_after(2)
            assert [m.offset for m in messages] == [3, 4]
            assert (state.newest, state.oldest) == (4, 1)
            assert (await log.read_after(4))[1] == []
            assert (await log.read_after(99))[1] == []
            _, everything = await log.read_after(0)
            assert [m.kind for m in everything] == [PUBLIC, PRIVATE, PUBLIC, PUBLIC]

    run(body())


def test_recent_shows_only_what_the_user_may_see(open_stores):
    async def body():
        async with started(open_stores) as (log, _, recorder):
            await say(
                log,
                recorder,
                "ana: oi",
                "ana>joao: p1",
                "bia>carla: p2",
                "joao>ana: p3",
                "bia: tchau",
                "carla>carla: nota",
            )
            _, messages = await log.recent("ana", 10)
            assert [m.text for m in messages] == ["oi", "p1", "p3", "tchau"]
            _, messages = await log.recent("carla", 10)
            assert [m.text for m in messages] == ["oi", "p2", "tchau", "nota"]
            state, messages = await log.recent("ana", 2)
            assert [m.text for m in messages] == ["p3", "tchau"]
            assert (state.newest, state.oldest) == (6, 1)
            assert (await log.recent("ana", 0))[1] == []

    run(body())


def test_recent_looks_only_inside_the_retention(open_stores):
    async def body():
        async with started(open_stores, retention=2) as (log, _, recorder):
            await say(log, recorder, "ana>joao: old", "bia: x", "bia: y")
            state, messages = await log.recent("joao", 5)
            assert [m.text for m in messages] == ["x", "y"]
            assert (state.newest, state.oldest) == (3, 2)

    run(body())


def test_a_name_is_registered_once(open_stores):
    async def body():
        async with started(open_stores) as (_, users, _recorder):
            assert await users.lookup("ana") is None
            assert await users.register("ana", "record-1") is True
            assert await users.register("ana", "record-2") is False
            assert await users.lookup("ana") == "record-1"

    run(body())


def test_two_concurrent_registrations_of_a_name_one_wins(open_stores):
    async def body():
        async with started(open_stores) as (_, users, _recorder):
            won = await asyncio.gather(users.register("ana", "r1"), users.register("ana", "r2"))
            assert sorted(won) == [False, True]
            assert await users.lookup("ana") == ("r1" if won[0] else "r2")

    run(body())


def test_count_counts_registered_names(open_stores):
    async def body():
        async with started(open_stores) as (_, users, _recorder):
            assert await users.count() == 0
            for name in ("ana", "joao", "ana", "bia"):
                await users.register(name, "r")
            assert await users.count() == 3

    run(body())


# -- the limiter -------------------------------------------------------------------------


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
