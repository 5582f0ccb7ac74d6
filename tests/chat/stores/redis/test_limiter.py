"""The Redis limiter (wslab.chat.stores.redis.limiter) when Redis cannot be reached (its
contract with the in-memory one is in ``stores/test_contract.py``)."""

import pytest
from chatclient import run

from wslab.chat.stores.redis import RedisLimiter


def test_an_unreachable_redis_is_a_store_error():
    from wslab.chat.errors import StoreError
    from wslab.chat.testing.valkey import free_port

    async def body():
        limiter = RedisLimiter(f"redis://127.0.0.1:{free_port()}/0")
        with pytest.raises(StoreError, match="limites"):
            await limiter.allow("line:ana", 1.0, 1)
        await limiter.close()

    run(body())
