"""The Redis log (wslab.chat.stores.redis.log) on a real Valkey: two logs as two nodes
on one Redis, and the faults (Redis restarted with and without its data, an epoch
changed under a node)."""

from __future__ import annotations

import asyncio

import pytest
from chatclient import append_lines as say
from chatclient import redis_node, run

from wslab.chat.errors import StoreError
from wslab.chat.rules.messages import Kind

PUBLIC, PRIVATE = Kind.PUBLIC, Kind.PRIVATE


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
