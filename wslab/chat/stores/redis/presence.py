"""Who is online on every node of a chat sharing one Redis."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Callable

from ...errors import StoreError
from .client import FAILURES, REPLY_TIMEOUT, Where, connect, failure

__all__ = ["RedisPresence"]

logger = logging.getLogger(__name__)

MIN_GAP = 0.1  # seconds between two presence heartbeats of one node, at least

# KEYS: the nodes zset. ARGV: the prefix of the per-node sets. The users of every node
# whose heartbeat has not expired (read-only: the heartbeats prune the zset).
ONLINE = """
local now = redis.call('TIME')
local ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local names = {}
for _, node in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], ms, '+inf')) do
  for _, user in ipairs(redis.call('SMEMBERS', ARGV[1] .. node)) do
    names[#names + 1] = user
  end
end
return names
"""


class RedisPresence:
    """Who is online on every node: each node rewrites the set of its users every
    ``interval`` seconds with a TTL of ``ttl`` seconds, so the users of a node that
    died (SIGKILL, lost network) leave :meth:`online` within ``ttl`` s, with no ghost.

    Keys: ``{prefix}presence:<node>`` (a set of names, expiring) and ``{prefix}nodes``
    (a sorted set: node -> expiry in ms, Redis's clock, for discovery).
    """

    def __init__(
        self,
        where: Where,
        node: str | None = None,
        *,
        prefix: str = "wslab:chat:",
        ttl: float = 10.0,
        interval: float = 2.0,
    ) -> None:
        if not 0 < interval < ttl:
            raise ValueError(f"need 0 < interval < ttl, not {interval!r}, {ttl!r}")
        self.node = node or secrets.token_hex(6)
        self.ttl, self.interval = ttl, interval
        self._client = connect(where)
        self._nodes = f"{prefix}nodes"
        self._sets = f"{prefix}presence:"
        self._online = self._client.register_script(ONLINE)
        self._local: Callable[[], list[str]] = list
        self._stopped = False
        self._wake = asyncio.Event()  # stop, or this node's users changed
        self._beat: asyncio.Task[None] | None = None

    async def start(self, local: Callable[[], list[str]]) -> None:
        """Publish ``local()`` (the names online on this node) now and every
        ``interval`` s until :meth:`close`.

        Raises:
            StoreError: the first heartbeat failed.
        """
        self._local = local
        await self.heartbeat()
        self._beat = asyncio.get_running_loop().create_task(self._beating(), name="wslab-presence")

    async def heartbeat(self) -> None:
        """Write this node's users once (the node may call it on a join or a leave)."""
        key, ms = self._sets + self.node, int(self.ttl * 1000)
        try:
            async with self._client.pipeline(transaction=True) as pipe:
                pipe.delete(key)
                names = self._local()
                if names:
                    pipe.sadd(key, *names)
                    pipe.pexpire(key, ms)
                pipe.time()
                reply = await pipe.execute()
            seconds, micros = reply[-1]
            now = seconds * 1000 + micros // 1000
            async with self._client.pipeline(transaction=True) as pipe:
                pipe.zadd(self._nodes, {self.node: now + ms})
                pipe.zremrangebyscore(self._nodes, "-inf", now)
                await pipe.execute()
        except FAILURES as error:
            raise failure(self._client, error, "não consegui anunciar quem está online") from error

    def changed(self) -> None:
        """This node's users changed (a first session opened, a last one closed):
        publish them now rather than at the next beat (beats stay at least
        ``MIN_GAP`` s apart, so a burst of joins costs a few writes, not one each)."""
        self._wake.set()

    async def online(self) -> list[str]:
        """Sorted names online on any live node."""
        try:
            names = await self._online(keys=[self._nodes], args=[self._sets])
        except FAILURES as error:
            raise failure(self._client, error, "não consegui ver quem está online") from error
        return sorted(set(names))

    async def close(self) -> None:
        """Stop the heartbeat and withdraw this node's users at once."""
        self._stopped = True
        self._wake.set()
        if self._beat is not None:
            await asyncio.wait({self._beat}, timeout=2 * REPLY_TIMEOUT)
            self._beat = None
        with contextlib.suppress(*FAILURES):
            await self._client.delete(self._sets + self.node)
            await self._client.zrem(self._nodes, self.node)
        await self._client.aclose()

    async def _beating(self) -> None:
        while not self._stopped:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.interval)
            if self._stopped:
                return
            self._wake.clear()
            try:
                await self.heartbeat()
            except StoreError as error:
                logger.warning("presence heartbeat: %s", error)
            await asyncio.sleep(MIN_GAP)
