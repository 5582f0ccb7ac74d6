"""One node's writer (wslab.chat.stores.redis.writer) on a real Valkey without replicas:
lines keep the order of the calls, many go in one round trip, and the committed offset
follows the newest."""

from __future__ import annotations

import asyncio

import redis
from chatclient import redis_node, run

from wslab.chat.rules.messages import Kind


def test_lines_keep_call_order_and_share_round_trips(valkey_url):
    async def body():
        async with redis_node(valkey_url, retention=1000) as (log, _, recorder):
            with redis.Redis.from_url(valkey_url) as client:
                client.config_resetstat()
            appends = [log.append(Kind.PUBLIC, "ana", None, f"m{i}") for i in range(300)]
            offsets = await asyncio.gather(*appends)  # queued in this order, at once
            await recorder.upto(300)
            with redis.Redis.from_url(valkey_url, decode_responses=True) as client:
                rounds = client.info("commandstats")["cmdstat_evalsha"]["calls"]
                meta = client.hgetall("wslab:chat:meta")
        assert offsets == list(range(1, 301))
        assert [m.text for m in recorder.seen] == [f"m{i}" for i in range(300)]
        assert rounds < 100  # lines share rounds (their count depends on timing)
        assert meta["c"] == meta["s"] == "300"  # no replica: committed as written

    run(body())


def test_a_retried_round_and_a_line_sent_again_store_nothing_twice(valkey_url):
    """The APPEND script itself: a round run twice with its ``done`` key (a retry after
    a lost reply) gives the same offsets and stores nothing again; a later round with a
    line whose id its sender used gets the first copy's offset; a line without an id
    is always a new one; a line with a used id that says something else gets 0."""
    from wslab.chat.rules.messages import fingerprint
    from wslab.chat.stores.redis.writer import APPEND

    line_a = ["public", "ana", "", "a", "k1", fingerprint("public", None, "a")]
    line_b = ["public", "bia", "", "b", "", fingerprint("public", None, "b")]
    other_a = ["public", "ana", "", "outra", "k1", fingerprint("public", None, "outra")]
    tail = [60_000, 30, "t:ids:", 300]
    keys = ["t:meta", "t:log", "t:commits", "t:mine"]
    with redis.Redis.from_url(valkey_url, decode_responses=True) as client:
        client.hset("t:meta", "e", "e1")
        append = client.register_script(APPEND)
        args = ["e1", 100, "1", 3, *line_a, *line_a, *line_b, *tail]
        first = append([*keys, "t:done:x"], args)
        retried = append([*keys, "t:done:x"], args)
        later = append([*keys, "t:done:y"], ["e1", 100, "1", 2, *line_a, *line_b, *tail])
        reused = append([*keys, "t:done:z"], ["e1", 100, "1", 1, *other_a, *tail])
        stored = [(f["s"], f["x"], f["i"]) for _, f in client.xrange("t:log")]
        meta = client.hgetall("t:meta")
    assert first == retried == [1, "e1", 2, [1, 1, 2]]
    assert later == [1, "e1", 3, [1, 3]]
    assert reused == [1, "e1", 3, [0]]  # k1 named another line: refused, nothing stored
    assert stored == [("ana", "a", "k1"), ("bia", "b", ""), ("bia", "b", "")]
    assert meta["s"] == meta["c"] == "3"
