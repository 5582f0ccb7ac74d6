"""The Redis credentials (wslab.chat.stores.redis.credentials): one set of registered
names for every node on one Redis."""

import asyncio

from chatclient import redis_node, run

from wslab.chat.stores.redis import RedisCredentials


def test_two_nodes_share_registrations(valkey_url):
    async def body():
        async with (
            redis_node(valkey_url) as (_, users_a, _a),
            redis_node(valkey_url) as (_, users_b, _b),
        ):
            won = await asyncio.gather(
                users_a.register("ana", "ana", "ra"), users_b.register("ana", "ana", "rb")
            )
            assert sorted(won, key=str) == [None, "ana"]
            assert await users_a.lookup("ana") == await users_b.lookup("ana")
            assert await users_b.count() == 1

    run(body())


def test_names_of_an_older_redis_get_their_skeletons_before_a_look_alike_check(valkey_url):
    """A Redis written by a wslab that kept no skeletons: the first check fills them
    in, once for every node, so "a1ice" meets the old "alice"."""
    import redis.asyncio

    async def body():
        async with redis.asyncio.Redis.from_url(valkey_url) as client:
            await client.hset("wslab:chat:users", mapping={"alice": "r1", "bob": "r2"})
        a, b = RedisCredentials(valkey_url), RedisCredentials(valkey_url)
        assert await a.register("a1ice", "alice", "r3") == "alice"
        assert await b.similar("bob") == "bob"
        assert await b.register("carol", "carol", "r4") is None
        await a.close()
        await b.close()

    run(body())
