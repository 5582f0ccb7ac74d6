"""The stores' contract (wslab.chat.stores), one suite for every implementation.

Each entry of ``FACTORIES`` is a function ``(request) -> open_stores`` where
``open_stores(retention)`` is a coroutine returning a fresh ``(log, credentials)``
pair on the store under test; calling it again must reach the *same* stored data
when the store outlives its objects (SQLite, Redis) and fresh data when it does not
(memory). To add a store, write such a factory (it may take fixtures through
``request.getfixturevalue``) and append it to ``FACTORIES``.

The Redis variant runs against a real Valkey started by
:class:`wslab.chat.testing.valkey.LocalValkey`, one per module, flushed between tests.
The tests after the contract are Redis-only: two logs as two nodes on one Redis, and
the faults (Redis restarted with and without its data, Redis unreachable).
"""

from __future__ import annotations

import asyncio
import contextlib
import time

import pytest

from wslab.chat.errors import StoreError
from wslab.chat.rules.messages import Kind
from wslab.chat.stores.memory import MemoryCredentials, MemoryLog
from wslab.chat.stores.redis import RedisCredentials, RedisLog
from wslab.chat.stores.sqlite import SqliteStore
from wslab.chat.testing.valkey import free_port

PUBLIC, PRIVATE = Kind.PUBLIC, Kind.PRIVATE
WAIT = 10.0  # bound of every wait for a delivery


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


def run(coroutine, timeout: float = 20.0):
    """Run one test body on a fresh event loop, bounded."""
    return asyncio.run(asyncio.wait_for(coroutine, timeout))


class Recorder:
    """The ``deliver`` callback: every delivery in the order received."""

    def __init__(self) -> None:
        self.seen = []
        self.lost = []
        self.outages = []  # True: the store stopped answering; False: it answers again
        self._changed = asyncio.Event()

    def __call__(self, messages) -> None:
        self.seen.extend(messages)
        self._changed.set()

    def on_lost(self, epoch: str) -> None:
        self.lost.append(epoch)
        self._changed.set()

    def on_outage(self, down: bool) -> None:
        self.outages.append(down)
        self._changed.set()

    async def until(self, condition, what: str = "a delivery") -> None:
        deadline = time.monotonic() + WAIT
        while not condition(self):
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no {what} in {WAIT} s; seen {self.offsets()}")
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), left)

    async def upto(self, offset: int) -> None:
        await self.until(lambda r: r.seen and r.seen[-1].offset >= offset, f"offset {offset}")

    def offsets(self) -> list[int]:
        return [m.offset for m in self.seen]


@contextlib.asynccontextmanager
async def started(open_stores, retention=10):
    log, users = await open_stores(retention)
    recorder = Recorder()
    try:
        await log.start(recorder, recorder.on_lost, recorder.on_outage)
        yield log, users, recorder
    finally:
        await log.close()
        await users.close()


async def say(log, recorder, *lines):
    """Append lines ("ana: text" public, "ana>joao: text" private); wait until each is
    delivered (a read reflects what was delivered) and return the offsets."""
    offsets = []
    for line in lines:
        head, text = line.split(": ", 1)
        sender, _, to = head.partition(">")
        kind = PRIVATE if to else PUBLIC
        offsets.append(await log.append(kind, sender, to or None, text))
    if offsets:
        await recorder.upto(offsets[-1])
    return offsets


# -- offsets and delivery --------------------------------------------------------------


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


# -- reads and retention -----------------------------------------------------------------


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


# -- credentials ------------------------------------------------------------------------


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


# -- Redis only: several nodes on one Redis, and its faults --------------------------------


@contextlib.asynccontextmanager
async def redis_node(url, retention=10):
    log, users = RedisLog(url, retention), RedisCredentials(url)
    recorder = Recorder()
    try:
        await log.start(recorder, recorder.on_lost, recorder.on_outage)
        yield log, users, recorder
    finally:
        await log.close()
        await users.close()


def test_two_nodes_deliver_the_same_messages_in_the_same_order(valkey_url):
    async def body():
        async with (
            redis_node(valkey_url) as (a, _, seen_a),
            redis_node(valkey_url) as (b, _, seen_b),
        ):
            assert a.state.epoch == b.state.epoch
            await asyncio.gather(
                *(a.append(PUBLIC, "ana", None, f"a{i}") for i in range(20)),
                *(b.append(PRIVATE, "joao", "ana", f"b{i}") for i in range(20)),
            )
            await seen_a.upto(40)
            await seen_b.upto(40)
            assert seen_a.seen == seen_b.seen
            assert seen_a.offsets() == list(range(1, 41))
            state, messages = await b.read_after(35)
            assert state == a.state == b.state
            assert messages == seen_a.seen[35:]

    run(body())


def test_two_nodes_share_registrations(valkey_url):
    async def body():
        async with (
            redis_node(valkey_url) as (_, users_a, _a),
            redis_node(valkey_url) as (_, users_b, _b),
        ):
            won = await asyncio.gather(users_a.register("ana", "ra"), users_b.register("ana", "rb"))
            assert sorted(won) == [False, True]
            assert await users_a.lookup("ana") == await users_b.lookup("ana")
            assert await users_b.count() == 1

    run(body())


def test_redis_restarted_with_its_data_keeps_epoch_and_messages(valkey, valkey_url):
    async def body():
        async with redis_node(valkey_url) as (log, _, recorder):
            await say(log, recorder, "ana: a", "ana: b")
            epoch = log.state.epoch
            await asyncio.to_thread(valkey.restart, True)
            offset = await retry_append(log, "ana: c")
            await recorder.upto(offset)
            assert recorder.offsets() == [1, 2, 3]
            assert recorder.lost == []
            await recorder.until(lambda r: r.outages == [True, False], "outage, then its end")
            state, messages = await log.read_after(0)
            assert state.epoch == epoch and [m.text for m in messages] == ["a", "b", "c"]

    run(body())


def test_redis_back_empty_starts_a_new_epoch_and_says_so(valkey, valkey_url):
    async def body():
        async with redis_node(valkey_url) as (log, _, recorder):
            await say(log, recorder, "ana: a", "ana: b")
            epoch = log.state.epoch
            await asyncio.to_thread(valkey.restart, False)
            await recorder.until(lambda r: r.lost, "lost() call")
            assert recorder.lost == [log.state.epoch] and log.state.epoch != epoch
            assert log.state.newest == 0
            offset = await retry_append(log, "ana: c")
            await recorder.until(lambda r: len(r.seen) == 3, "the new epoch's message")
            assert offset == 1 and [m.text for m in recorder.seen] == ["a", "b", "c"]
            assert recorder.outages == [True, False]
            state, messages = await log.read_after(0)
            assert state.epoch == recorder.lost[0] and [m.text for m in messages] == ["c"]

    run(body())


def test_an_append_under_a_stale_epoch_stores_nothing(valkey, valkey_url):
    """Between Redis coming back empty and a node noticing, its appends are refused: no
    message is acknowledged under an epoch its sender does not know."""

    async def body():
        async with redis_node(valkey_url) as (log, _, recorder):
            await say(log, recorder, "ana: a")
            import redis.asyncio

            async with redis.asyncio.Redis.from_url(valkey_url) as client:
                await client.hset("wslab:chat:meta", "e", "someone-else")
            with pytest.raises(StoreError, match="nova época"):
                await log.append(PUBLIC, "ana", None, "b")
            await recorder.until(lambda r: r.lost, "lost() call")
            assert recorder.lost == ["someone-else"]

    run(body())


@pytest.fixture
def long_block(monkeypatch):
    """A follower whose XREAD BLOCK outlasts every wait of a test: its idle re-check of
    the epoch never comes to the rescue, so what a test sees came from elsewhere."""
    from wslab.chat.stores.redis import log as redis_store

    monkeypatch.setattr(redis_store, "BLOCK_MS", 60_000)


def test_a_follower_cut_off_checks_the_epoch_before_reading_again(valkey, valkey_url, long_block):
    """Redis came back empty and the follower's connection was cut: the follower must
    not quietly reconnect and block on the new Redis under its old epoch (the node
    would refuse every append, with no lost() call, until the block ended)."""

    async def body():
        async with redis_node(valkey_url) as (log, _, recorder):
            await say(log, recorder, "ana: a", "ana: b")
            epoch = log.state.epoch
            import redis.asyncio

            async with redis.asyncio.Redis.from_url(valkey_url) as client:
                # Back empty at once, and every other connection cut (as a restart
                # does), so a reconnect finds the new, empty Redis already there.
                await client.flushall()
                await client.execute_command("CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes")
            await recorder.until(lambda r: r.lost, "lost() call")
            assert recorder.lost == [log.state.epoch] and log.state.epoch != epoch
            offset = await retry_append(log, "ana: c")
            await recorder.until(lambda r: len(r.seen) == 3, "the new epoch's message")
            assert offset == 1 and [m.text for m in recorder.seen] == ["a", "b", "c"]
            assert recorder.outages == [True, False]

    run(body())


def test_a_refused_append_makes_the_follower_check_the_epoch_at_once(
    valkey, valkey_url, long_block
):
    """An append refused for a stale epoch wakes the follower from its XREAD BLOCK: the
    node moves to the new epoch (and lost() closes its sessions) now, not when the
    block ends; meanwhile every append of its sessions would be refused."""

    async def body():
        async with redis_node(valkey_url) as (log, _, recorder):
            await say(log, recorder, "ana: a")
            import redis.asyncio

            async with redis.asyncio.Redis.from_url(valkey_url) as client:
                await client.hset("wslab:chat:meta", "e", "someone-else")
            with pytest.raises(StoreError, match="nova época"):
                await log.append(PUBLIC, "ana", None, "b")
            await recorder.until(lambda r: r.lost, "lost() call")
            assert recorder.lost == ["someone-else"] and log.state.epoch == "someone-else"

    run(body())


async def retry_append(log, line, tries=50):
    """Append once the store answers again (a node's user would resend too)."""
    sender, text = line.split(": ", 1)
    for _ in range(tries):
        try:
            return await log.append(PUBLIC, sender, None, text)
        except StoreError:
            await asyncio.sleep(0.1)
    raise AssertionError("the store never came back")


def test_an_unreachable_redis_is_a_store_error_in_bounded_time():
    async def body():
        url = f"redis://127.0.0.1:{free_port()}/0"
        log, users = RedisLog(url), RedisCredentials(url)
        started_at = time.monotonic()
        with pytest.raises(StoreError, match="O Redis em 127.0.0.1:"):
            await log.start(lambda messages: None)
        with pytest.raises(StoreError, match="usuários"):
            await users.lookup("ana")
        assert time.monotonic() - started_at < 10
        await log.close()
        await users.close()

    run(body())


def test_a_bad_redis_url_is_a_store_error():
    with pytest.raises(StoreError, match="redis://HOST:PORTA/BANCO"):
        RedisLog("http://127.0.0.1:1/0")
