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


def test_a_line_sent_again_with_its_id_is_stored_once(open_stores):
    """The same sender and id: the first copy's offset, nothing stored or delivered
    again, in one group of appends as in later ones; another sender's line with the
    same id, or the same sender's with another id, is a line of its own."""

    async def body():
        async with started(open_stores, retention=100) as (log, _, recorder):
            first = await log.append(PUBLIC, "ana", None, "oi", "k1")
            burst = await asyncio.gather(
                log.append(PUBLIC, "ana", None, "oi", "k1"),
                log.append(PRIVATE, "ana", "joao", "psiu", "k2"),
                log.append(PRIVATE, "ana", "joao", "psiu", "k2"),
                log.append(PUBLIC, "joao", None, "oi", "k1"),
                log.append(PUBLIC, "ana", None, "sem id"),
                log.append(PUBLIC, "ana", None, "sem id"),
            )
            again = await log.append(PRIVATE, "ana", "joao", "psiu", "k2")
            assert first == 1 and burst == [1, 2, 2, 3, 4, 5] and again == 2
            await recorder.upto(5)
            await asyncio.sleep(0.05)  # a second copy would show up now
            assert recorder.offsets() == [1, 2, 3, 4, 5]
            seen = [(m.sender, m.text, m.client_id) for m in recorder.seen]
            assert seen == [
                ("ana", "oi", "k1"),
                ("ana", "psiu", "k2"),
                ("joao", "oi", "k1"),
                ("ana", "sem id", None),
                ("ana", "sem id", None),
            ]
            _, kept = await log.read_after(0)
            assert [m.client_id for m in kept] == ["k1", "k2", "k1", None, None]
            _, recent = await log.recent("joao", 10)
            assert [m.client_id for m in recent] == ["k1", "k2", "k1", None, None]

    run(body())


def test_an_id_given_to_another_line_is_refused_and_nothing_stored(open_stores):
    """The same sender and id for a line that says something else (text, kind or
    recipient): ReusedId, nothing stored or delivered; in one group of appends too."""
    from wslab.chat.errors import ReusedId

    async def body():
        async with started(open_stores, retention=100) as (log, _, recorder):
            await log.append(PUBLIC, "ana", None, "oi", "k1")
            for kind, to, text in ((PUBLIC, None, "outra"), (PRIVATE, "joao", "oi")):
                with pytest.raises(ReusedId):
                    await log.append(kind, "ana", to, text, "k1")
            burst = await asyncio.gather(
                log.append(PUBLIC, "ana", None, "nova", "k2"),
                log.append(PUBLIC, "ana", None, "não é a nova", "k2"),
                return_exceptions=True,
            )
            assert burst[0] == 2 and isinstance(burst[1], ReusedId)
            assert await log.append(PUBLIC, "ana", None, "oi", "k1") == 1
            await recorder.upto(2)
            await asyncio.sleep(0.05)
            assert [m.text for m in recorder.seen] == ["oi", "nova"]
            assert log.state.newest == 2

    run(body())


def test_a_lines_id_outlives_its_log_objects(open_stores):
    """A store that outlives its objects (SQLite, Redis) still knows the id; memory
    starts afresh (a new epoch: the offset it gives is a new line's)."""

    async def body():
        async with started(open_stores) as (log, _, _recorder):
            await log.append(PUBLIC, "ana", None, "oi", "k1")
            epoch = log.state.epoch
        async with started(open_stores) as (log, _, _recorder):
            offset = await log.append(PUBLIC, "ana", None, "oi", "k1")
            _, kept = await log.read_after(0)
            if log.state.epoch == epoch:
                assert offset == 1 and [m.text for m in kept] == ["oi"]
            else:
                assert offset == 1 and log.state.newest == 1

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


def test_read_after_with_a_limit_reads_one_page(open_stores):
    """A lazy replay reads the log a page at a time (issue 24): the oldest ``limit``
    messages after the offset, whichever end of the history they are near."""

    async def body():
        async with started(open_stores) as (log, _, recorder):
            await say(log, recorder, *(f"ana: m{n}" for n in range(1, 11)))
            pages = [[m.offset for m in (await log.read_after(after, 4))[1]] for after in (0, 3, 8)]
            assert pages == [[1, 2, 3, 4], [4, 5, 6, 7], [9, 10]]
            state, page = await log.read_after(6, 2)
            assert [m.text for m in page] == ["m7", "m8"] and state.newest == 10

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
            assert await users.register("ana", "ana", "record-1") is None
            assert await users.register("ana", "ana", "record-2") == "ana"
            assert await users.lookup("ana") == "record-1"

    run(body())


def test_two_concurrent_registrations_of_a_name_one_wins(open_stores):
    async def body():
        async with started(open_stores) as (_, users, _recorder):
            won = await asyncio.gather(
                users.register("ana", "ana", "r1"), users.register("ana", "ana", "r2")
            )
            assert sorted(won, key=str) == [None, "ana"]
            assert await users.lookup("ana") == ("r1" if won[0] is None else "r2")

    run(body())


def test_a_look_alike_of_a_registered_name_is_refused_with_its_holder(open_stores):
    """Issue 24: the skeleton is stored with the name, so "a1ice" (skeleton "alice")
    finds "alice" in one lookup, and registering it is refused atomically."""
    from wslab.chat.rules.names import skeleton

    async def body():
        async with started(open_stores) as (_, users, _recorder):
            assert await users.register("alice", skeleton("alice"), "r1") is None
            assert await users.similar(skeleton("a1ice")) == "alice"
            assert await users.similar(skeleton("bob")) is None
            assert await users.register("a1ice", skeleton("a1ice"), "r2") == "alice"
            assert await users.lookup("a1ice") is None
            assert await users.count() == 1

    run(body())


def test_count_counts_registered_names(open_stores):
    async def body():
        async with started(open_stores) as (_, users, _recorder):
            assert await users.count() == 0
            for name in ("ana", "joao", "ana", "bia"):
                await users.register(name, name, "r")
            assert await users.count() == 3

    run(body())


def test_names_never_used_again_expire_and_free_their_skeleton(open_stores):
    """A name registered and never used since expires after ``age`` seconds; one used
    again (a second login) stays."""

    async def body():
        async with started(open_stores) as (_, users, _recorder):
            for name in ("ana", "bia"):
                assert await users.register(name, name, "r") is None
            await users.used("bia")
            assert await users.expire(3600) == 0  # not old enough
            await asyncio.sleep(0.05)
            assert await users.expire(0.01) == 1
            assert await users.lookup("ana") is None and await users.lookup("bia") == "r"
            assert await users.similar("ana") is None
            assert await users.register("ana", "ana", "r2") is None  # free again
            assert await users.count() == 2

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
