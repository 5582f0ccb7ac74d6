"""The limits' counts in Redis, shared by every node of a chat: a user's lines and a
name's wrong secrets are counted once, however many nodes they reach.

Each rule is one Lua script, so a count is read and written atomically, with Redis's
own clock (``TIME``), so the nodes' clocks need not agree. Keys (``prefix`` defaults
to ``wslab:chat:``), each with a TTL, so Redis forgets what no longer matters::

    {prefix}bucket:<key>          hash  n tokens, t last update (s): until full again
    {prefix}fails:<key>           hash  c wrong secrets in a row, u retry after (ms):
                                        for a day after the last failure
    {prefix}known:<name>:<addr>   string, for KNOWN_DAYS days after the last login
"""

from __future__ import annotations

from collections.abc import Collection

from redis.asyncio import Redis

from .client import FAILURES, connect, failure

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

# KEYS: the failure counts. Returns the longest wait, in ms (0: every key may try).
WAIT = """
local now = redis.call('TIME')
now = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local wait = 0
for _, key in ipairs(KEYS) do
  wait = math.max(wait, tonumber(redis.call('HGET', key, 'u') or '0') - now)
end
return wait
"""

# KEYS: the failure counts. ARGV: free failures, base delay (ms), cap (ms), TTL (ms).
# The delay after the k-th failure past the free ones is base * 2^k, at most cap (the
# rule of wslab.chat.rules.ratelimit.LoginThrottle).
FAILED = """
local now = redis.call('TIME')
now = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local free, base, cap = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
for _, key in ipairs(KEYS) do
  local past = redis.call('HINCRBY', key, 'c', 1) - free - 1
  local delay = 0
  if past >= 0 then
    delay = math.min(cap, base * 2 ^ math.min(past, 64))
  end
  redis.call('HSET', key, 'u', now + delay)
  redis.call('PEXPIRE', key, ARGV[4])
end
return 0
"""


class RedisLimiter:
    """A :class:`wslab.chat.stores.Limiter` in Redis (see the module docstring).

    Args:
        url: ``redis://HOST:PORT/DB``.
        login_free, login_cap: see :class:`wslab.chat.rules.ratelimit.LoginThrottle`.
        prefix: key prefix, as for the other Redis stores.

    Every Redis failure becomes :class:`wslab.chat.errors.StoreError` with one pt-BR
    sentence (the node then refuses the login or the line, never lets it through
    uncounted).
    """

    def __init__(
        self,
        url: str,
        *,
        login_free: int = 5,
        login_cap: float = 300.0,
        prefix: str = "wslab:chat:",
    ) -> None:
        self._client: Redis = connect(url)
        self._free, self._cap_ms = login_free, int(login_cap * 1000)
        self._prefix = prefix
        self._allow = self._client.register_script(ALLOW)
        self._wait = self._client.register_script(WAIT)
        self._failed = self._client.register_script(FAILED)

    async def allow(self, key: str, rate: float, burst: int) -> bool:
        return bool(await self._call(self._allow(keys=[self._bucket(key)], args=[rate, burst])))

    async def login_wait(self, keys: Collection[str]) -> float:
        return await self._call(self._wait(keys=self._fails(keys))) / 1000

    async def login_failed(self, keys: Collection[str]) -> None:
        args = [self._free, 1000, self._cap_ms, FAILS_TTL_MS]
        await self._call(self._failed(keys=self._fails(keys), args=args))

    async def login_succeeded(self, keys: Collection[str]) -> None:
        await self._call(self._client.delete(*self._fails(keys)))

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

    async def _call(self, call):
        try:
            return await call
        except FAILURES as error:
            raise failure(self._client, error, "não consegui consultar os limites") from error
