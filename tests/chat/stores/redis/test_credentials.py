"""The Redis credentials (wslab.chat.stores.redis.credentials): one set of registered
names for every node on one Redis."""

import asyncio

from chatclient import redis_node, run


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
