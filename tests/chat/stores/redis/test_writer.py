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
