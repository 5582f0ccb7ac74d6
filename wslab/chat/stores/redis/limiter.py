"""The limits' counts in Redis, shared by every node of a chat: a user's lines and a
name's wrong secrets are counted once, however many nodes they reach.

Each rule is one Lua script, so a count is read and written atomically, with Redis's
own clock (``TIME``), so the nodes' clocks need not agree. Keys (``prefix`` defaults
to ``wslab:chat:``), each with a TTL, so Redis forgets what no longer matters::

    {prefix}bucket:<key>          hash  n tokens, t last update (s): until full again
    {prefix}fails:<key>           hash  c wrong secrets in a row, u retry after (ms),
                                        f attempts in flight: for a day after the last
    {prefix}known:<name>:<addr>   string, for KNOWN_DAYS days after the last login
"""

from __future__ import annotations

from collections.abc import Awaitable, Collection
from typing import Any

from redis.asyncio import Redis

from .client import Where, answer, connect

__all__ = ["RedisLimiter"]

KNOWN_DAYS = 30
FAILS_TTL_MS = 24 * 3600 * 1000

# KEYS: the bucket. ARGV: rate (tokens/s), burst. Returns 1 if a token was spent.
ALLOW = """
local now = redis.call('TIME')
now = tonumber(now[1]) + tonumber(now[2]) / 1e6
local rate, burst = tonumber(ARGV[1]), tonumber(ARGV[2])
local bucket = redis.call('HMGET', KEYS[1], 'n', 't')
local tokens = tonumber(bucket[1]) or burst
local last = tonumber(bucket[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - last) * rate)
local spent = 0
if tokens >= 1 then
  tokens = tokens - 1
  spent = 1
end
redis.call('HSET', KEYS[1], 'n', tostring(tokens), 't', tostring(math.max(now, last)))
redis.call('PEXPIRE', KEYS[1], math.ceil((burst - tokens) / rate * 1000) + 1000)
return spent
"""

# KEYS: the throttle's keys, the charged ones first. ARGV: free failures, base delay
# (ms), cap (ms), TTL (ms), the operation, how many keys are charged. The rules of
# wslab.chat.rules.ratelimit.LoginThrottle, one script so that attempts from every node
# are counted one by one:
# - 'attempt': the longest wait in ms, counting nothing, when a key must wait (or
#   base when a held key has failures and an attempt in flight); else 0, with a
#   failure charged to each charged key and one attempt in flight on each held key;
# - 'failed': the attempt's secret was wrong: it lands on the held keys as a failure
#   (the charged ones, first, counted it already); returns the longest wait in ms;
# - 'release': a held attempt ended without a wrong secret; 'refund': a charged
#   attempt was never checked.
# The delay after the k-th failure past the free ones is base * 2^k, at most cap.
THROTTLE = """
local now = redis.call('TIME')
now = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local free, base, cap, ttl = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4]
local op = ARGV[5]
local function delay(count)
  local past = count - free - 1
  if past < 0 then return 0 end
  return math.min(cap, base * 2 ^ math.min(past, 64))
end
local function fail(key)
  local count = redis.call('HINCRBY', key, 'c', 1)
  redis.call('HSET', key, 'u', now + delay(count))
  redis.call('PEXPIRE', key, ttl)
end
if op == 'attempt' then
  local charged = tonumber(ARGV[6])
  local wait = 0
  for _, key in ipairs(KEYS) do
    wait = math.max(wait, tonumber(redis.call('HGET', key, 'u') or '0') - now)
  end
  if wait > 0 then return wait end
  for i = charged + 1, #KEYS do
    local v = redis.call('HMGET', KEYS[i], 'c', 'f')
    if tonumber(v[1] or '0') > 0 and tonumber(v[2] or '0') > 0 then return base end
  end
  for i = 1, charged do fail(KEYS[i]) end
  for i = charged + 1, #KEYS do
    redis.call('HINCRBY', KEYS[i], 'f', 1)
    redis.call('PEXPIRE', KEYS[i], ttl)
  end
  return 0
end
if op == 'failed' then
  local charged = tonumber(ARGV[6])
  local wait = 0
  for i, key in ipairs(KEYS) do
    if i > charged then
      if tonumber(redis.call('HGET', key, 'f') or '0') > 0 then
        redis.call('HINCRBY', key, 'f', -1)
      end
      fail(key)
    end
    wait = math.max(wait, tonumber(redis.call('HGET', key, 'u') or '0') - now)
  end
  return wait
end
for _, key in ipairs(KEYS) do
  if op == 'release' then
    if tonumber(redis.call('HGET', key, 'f') or '0') > 0 then
      redis.call('HINCRBY', key, 'f', -1)
    end
  elseif op == 'refund' then
    local count = math.max(0, tonumber(redis.call('HGET', key, 'c') or '0') - 1)
    redis.call('HSET', key, 'c', count, 'u', now + delay(count))
    redis.call('PEXPIRE', key, ttl)
  end
end
return 0
"""


class RedisLimiter:
    """A :class:`wslab.chat.stores.Limiter` in Redis (see the module docstring).

    Args:
        where: a ``redis://HOST:PORT/DB`` URL, or a
            :class:`~.client.SentinelService` (as the other Redis stores take).
        login_free, login_cap: see :class:`wslab.chat.rules.ratelimit.LoginThrottle`.
        prefix: key prefix, as for the other Redis stores.

    Every Redis failure becomes :class:`wslab.chat.errors.StoreError` with one pt-BR
    sentence (the node then refuses the login or the line, never lets it through
    uncounted).
    """

    def __init__(
        self,
        where: Where,
        *,
        login_free: int = 5,
        login_cap: float = 300.0,
        prefix: str = "wslab:chat:",
    ) -> None:
        self._client: Redis = connect(where)
        self._free, self._cap_ms = login_free, int(login_cap * 1000)
        self._prefix = prefix
        self._allow = self._client.register_script(ALLOW)
        self._throttle = self._client.register_script(THROTTLE)

    async def allow(self, key: str, rate: float, burst: int) -> bool:
        return bool(await self._call(self._allow(keys=[self._bucket(key)], args=[rate, burst])))

    async def login_attempt(self, charged: Collection[str], held: Collection[str]) -> float:
        keys = [*charged, *held]
        return await self._throttled("attempt", keys, len(charged)) / 1000

    async def login_failed(self, charged: Collection[str], held: Collection[str]) -> float:
        return await self._throttled("failed", [*charged, *held], len(charged)) / 1000

    async def login_release(self, held: Collection[str]) -> None:
        await self._throttled("release", held)

    async def login_refund(self, charged: Collection[str]) -> None:
        await self._throttled("refund", charged)

    async def login_succeeded(self, keys: Collection[str]) -> None:
        async with self._client.pipeline(transaction=True) as pipe:
            for key in self._fails(keys):
                pipe.hdel(key, "c", "u")  # attempts in flight stay counted
            await self._call(pipe.execute())

    async def _throttled(self, op: str, keys: Collection[str], charged: int = 0) -> int:
        """The THROTTLE script's reply: milliseconds to wait (0 when none)."""
        if not keys:
            return 0
        args: list[str | int] = [self._free, 1000, self._cap_ms, FAILS_TTL_MS, op, charged]
        wait_ms: int = await self._call(self._throttle(keys=self._fails(keys), args=args))
        return wait_ms

    async def knows(self, name: str, address: str) -> bool:
        return bool(await self._call(self._client.exists(self._known(name, address))))

    async def remember(self, name: str, address: str) -> None:
        key = self._known(name, address)
        await self._call(self._client.set(key, 1, ex=KNOWN_DAYS * 24 * 3600))

    async def close(self) -> None:
        await self._client.aclose()

    def _bucket(self, key: str) -> str:
        return f"{self._prefix}bucket:{key}"

    def _fails(self, keys: Collection[str]) -> list[str]:
        return [f"{self._prefix}fails:{key}" for key in keys]

    def _known(self, name: str, address: str) -> str:
        return f"{self._prefix}known:{name}:{address}"

    async def _call(self, call: Awaitable[Any]) -> Any:
        return await answer(self._client, call, "não consegui consultar os limites")
