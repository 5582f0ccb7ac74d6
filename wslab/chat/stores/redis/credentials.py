"""Registered users in Redis, shared by every node: the first node to register a name
(or a look-alike of it) wins.

Keys (``prefix`` defaults to ``wslab:chat:``)::

    {prefix}users      hash  name -> secret record (:mod:`wslab.chat.rules.kdf`)
    {prefix}skeletons  hash  confusable skeleton -> name (:mod:`wslab.chat.rules.names`)
    {prefix}unused     zset  names not used since registered, scored by when (ms,
                             Redis's clock): a name never used again expires

Registering and expiring are Lua scripts, so the name, its skeleton and its entry in
``unused`` change together whichever node asks. With replicas (a
:class:`~.client.SentinelService`), a registration counts only once a replica has it
(:mod:`.replicas`), so a failover cannot hand a taken name to someone else.

Names registered before skeletons were kept (a Redis of an older wslab) get theirs the
first time a node checks a look-alike: the node walks ``users`` (1,000 names a call,
about 11 µs of Python per skeleton: 1 s per 100,000 names) and sets the key
``{prefix}skeletons:complete`` when done, so it happens once for all the nodes (two
nodes that start it together both finish it; ``HSETNX`` keeps the first holder).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any

from ...errors import StoreError
from ...rules.names import skeleton as skeleton_of
from .client import FAILURES, SentinelService, Where, answer, connect, failure
from .replicas import Replicas

__all__ = ["RedisCredentials"]

# KEYS: users, skeletons, unused. ARGV: name, skeleton, record. Returns '' when this call
# registered the name, else the name that holds it (the name itself, or a look-alike).
REGISTER = """
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 then
  return ARGV[1]
end
local holder = redis.call('HGET', KEYS[2], ARGV[2])
if holder and redis.call('HEXISTS', KEYS[1], holder) == 1 then
  return holder
end
local now = redis.call('TIME')
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
redis.call('HSET', KEYS[2], ARGV[2], ARGV[1])
redis.call('ZADD', KEYS[3], tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000), ARGV[1])
return ''
"""

# KEYS: users, skeletons, unused. ARGV: age (ms), at most how many. Forgets the names
# registered longer ago than age and never used since (their skeletons too); returns
# how many.
EXPIRE = """
local now = redis.call('TIME')
local before = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000) - tonumber(ARGV[1])
local old = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', before, 'LIMIT', 0, tonumber(ARGV[2]))
if #old == 0 then
  return 0
end
local gone = {}
for _, name in ipairs(old) do
  gone[name] = true
end
local cursor = '0'
repeat
  local page = redis.call('HSCAN', KEYS[2], cursor, 'COUNT', 1000)
  cursor = page[1]
  for i = 1, #page[2], 2 do
    if gone[page[2][i + 1]] then
      redis.call('HDEL', KEYS[2], page[2][i])
    end
  end
until cursor == '0'
redis.call('HDEL', KEYS[1], unpack(old))
redis.call('ZREM', KEYS[3], unpack(old))
return #old
"""
EXPIRE_BATCH = 1000  # names forgotten per script call (one HSCAN of the skeletons each)


class RedisCredentials:
    """A :class:`wslab.chat.stores.CredentialStore` in Redis (see the module docstring)."""

    def __init__(self, where: Where, *, prefix: str = "wslab:chat:") -> None:
        self._client = connect(where)
        self._replicas = Replicas(required=isinstance(where, SentinelService))
        # A confirmed write must run once, on the connection its WAIT asks about.
        self._writer = connect(where, retries=0) if self._replicas.required else self._client
        self._keys = [f"{prefix}users", f"{prefix}skeletons", f"{prefix}unused"]
        self._done = f"{prefix}skeletons:complete"
        self._complete = False
        self._backfill = asyncio.Lock()
        self._register = self._client.register_script(REGISTER)
        self._expire = self._client.register_script(EXPIRE)

    async def lookup(self, user: str) -> str | None:
        record: str | None = await self._call(self._client.hget(self._keys[0], user))
        return record

    async def similar(self, skeleton: str) -> str | None:
        await self._backfilled()
        holder: str | None = await self._call(self._client.hget(self._keys[1], skeleton))
        return holder

    async def register(self, user: str, skeleton: str, record: str) -> str | None:
        await self._backfilled()
        if not self._replicas.required:
            holder = await self._call(
                self._register(keys=self._keys, args=[user, skeleton, record])
            )
            return holder or None
        # EVAL, not EVALSHA: a confirmed write is never retried (a NOSCRIPT would be).
        try:
            holder, confirmed = await self._replicas.confirm(
                self._writer,
                ("EVAL", REGISTER, len(self._keys), *self._keys, user, skeleton, record),
            )
        except FAILURES as error:
            raise failure(self._writer, error, "não consegui registrar o nome") from error
        if not confirmed:
            raise StoreError(
                "O Valkey não confirmou o registro do nome numa réplica a tempo: entre de "
                "novo em instantes."
            )
        return holder or None

    async def _backfilled(self) -> None:
        """Give the names of an older Redis their skeletons, once (module docstring)."""
        if self._complete:
            return
        async with self._backfill:
            if self._complete or await self._call(self._client.exists(self._done)):
                self._complete = True
                return
            cursor = 0
            while True:
                cursor, records = await self._call(
                    self._client.hscan(self._keys[0], cursor, count=1000)
                )
                names = list(records)
                if names:
                    async with self._client.pipeline(transaction=False) as pipe:
                        for name in names:
                            pipe.hsetnx(self._keys[1], skeleton_of(name), name)
                        await self._call(pipe.execute())
                if not cursor:
                    break
            await self._call(self._client.set(self._done, 1))
            self._complete = True

    async def used(self, user: str) -> None:
        await self._call(self._client.zrem(self._keys[2], user))

    async def expire(self, age: float) -> int:
        total = 0
        while True:
            gone: int = await self._call(
                self._expire(keys=self._keys, args=[int(age * 1000), EXPIRE_BATCH])
            )
            total += gone
            if gone < EXPIRE_BATCH:
                return total

    async def count(self) -> int:
        users: int = await self._call(self._client.hlen(self._keys[0]))
        return users

    async def close(self) -> None:
        await self._client.aclose()
        if self._writer is not self._client:
            await self._writer.aclose()

    async def _call(self, call: Awaitable[Any]) -> Any:
        return await answer(self._client, call, "não consegui consultar os usuários")
