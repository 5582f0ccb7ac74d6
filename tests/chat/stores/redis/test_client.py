"""The Redis client (wslab.chat.stores.redis.client): a Redis that cannot be reached, or
a URL that is not one, is a StoreError with one sentence, in bounded time."""

import time

import pytest
from chatclient import run

from wslab.chat.errors import StoreError
from wslab.chat.stores.redis import RedisCredentials, RedisLog
from wslab.chat.testing.valkey import free_port


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
