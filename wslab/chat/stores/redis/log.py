"""The shared message log in Redis/Valkey: any number of nodes pointed at one Redis share
one log and one epoch.

The design follows Centrifugo's Redis engine (centrifugal/centrifuge, its broker's
"add history" script): one Lua script, atomic, allocates the next offset, appends the
message to a stream whose entry id is ``<offset>-0`` (so offsets and stream ids agree)
and returns the offset and the epoch; each node follows the stream with ``XREAD
BLOCK`` and hands what it reads to its own hub, so every node delivers in the same
order and a sender's echo comes back the same way as everyone else's copy.

Keys (``prefix`` defaults to ``wslab:chat:``)::

    {prefix}meta    hash   e: the epoch, s: the newest offset
    {prefix}log     stream entry "<offset>-0": k kind, s sender, t to ("" for none),
                           x text, e epoch
    {prefix}done:<token>   the (offset) of an append already done, for 30 s, so that
                           a retried append is not stored twice

The epoch is a random string created in Redis by whoever finds none (``HSETNX``
semantics, inside a script): it changes only when Redis has lost the data (it came
back empty, or older than what this node delivered). An append names the epoch its
node knows and is refused, storing nothing, when Redis has another: no message is
ever acknowledged under an epoch its sender's session does not know.

Retention: reads return only the newest ``retention`` messages (exact, as in memory);
the stream itself is trimmed with ``MAXLEN ~`` to about ``retention + slack``, so a
follower that lags behind by less than ``slack`` messages still finds every entry.

Every Redis failure becomes :class:`StoreError` with one pt-BR sentence
(:mod:`.client`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import secrets
from collections.abc import Sequence

from ...errors import StoreError
from ...rules.messages import Delivery, DeliveryKind
from .. import Deliver, LogState, Lost, Outage, check_retention
from .client import FAILURES, REPLY_TIMEOUT, connect, failure

__all__ = ["RedisLog"]

logger = logging.getLogger(__name__)

BLOCK_MS = 1000  # one XREAD BLOCK; the follower checks the epoch at least this often
DONE_TTL = 30  # seconds an append's result is kept for a retry of the same append
CATCH_UP = 2.0  # seconds a read waits for this node's follower to reach its snapshot

# KEYS: meta, log, done. ARGV: expected epoch, stream length to keep, kind, sender,
# to, text. Returns {offset, epoch}; offset 0 when Redis's epoch is not the expected
# one (nothing stored).
APPEND = """
local epoch = redis.call('HGET', KEYS[1], 'e')
if epoch ~= ARGV[1] then
  return {0, epoch or ''}
end
local done = redis.call('GET', KEYS[3])
if done then
  return {tonumber(done), epoch}
end
local offset = redis.call('HINCRBY', KEYS[1], 's', 1)
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], offset .. '-0',
           'k', ARGV[3], 's', ARGV[4], 't', ARGV[5], 'x', ARGV[6], 'e', epoch)
redis.call('SET', KEYS[3], offset, 'EX', ARGV[7])
return {offset, epoch}
"""

# KEYS: meta. ARGV: the epoch this node knows ('' for none), the newest offset it
# delivered, a fresh epoch. Makes the fresh epoch current when Redis has none, or when
# it has this node's epoch but fewer messages than this node delivered (it came back
# from an older copy: its offsets would be reused). Returns {epoch, newest}.
ENSURE_EPOCH = """
local meta = redis.call('HMGET', KEYS[1], 'e', 's')
local epoch, newest = meta[1], tonumber(meta[2] or '0')
if not epoch or (epoch == ARGV[1] and newest < tonumber(ARGV[2])) then
  epoch = ARGV[3]
  redis.call('HSET', KEYS[1], 'e', epoch)
end
return {epoch, newest}
"""

# KEYS: meta, log. ARGV: expected epoch, retention, mode ('after' or 'recent'), after
# (offset), user, count. One snapshot: {epoch, newest, oldest, entries}, entries
# oldest first for 'after' and newest first for 'recent'; newest -1 when Redis's epoch
# is not the expected one. 'recent' scans the retention window 100 entries at a time.
READ = """
local meta = redis.call('HMGET', KEYS[1], 'e', 's')
local epoch, newest = meta[1], tonumber(meta[2] or '0')
if epoch ~= ARGV[1] then
  return {epoch or '', -1, 0, {}}
end
local oldest = math.max(newest - tonumber(ARGV[2]), 0) + 1
local first = redis.call('XRANGE', KEYS[2], '-', '+', 'COUNT', 1)
if #first == 0 then
  oldest = newest + 1
else
  oldest = math.min(math.max(oldest, tonumber(string.match(first[1][1], '^%d+'))), newest + 1)
end
local found = {}
if ARGV[3] == 'after' then
  local from = math.max(tonumber(ARGV[4]) + 1, oldest)
  if from <= newest then
    found = redis.call('XRANGE', KEYS[2], from .. '-0', newest .. '-0')
  end
else
  local user, count, high = ARGV[5], tonumber(ARGV[6]), newest
  while high >= oldest and #found < count do
    local batch = redis.call('XREVRANGE', KEYS[2], high .. '-0', oldest .. '-0', 'COUNT', 100)
    if #batch == 0 then break end
    for _, entry in ipairs(batch) do
      local f = entry[2]  -- k, kind, s, sender, t, to, ...: the order APPEND writes
      if f[2] == 'public' or f[4] == user or f[6] == user then
        found[#found + 1] = entry
        if #found >= count then break end
      end
      high = tonumber(string.match(entry[1], '^%d+')) - 1
    end
  end
end
return {epoch, newest, oldest, found}
"""


def _epoch_changed() -> StoreError:
    return StoreError(
        "O Redis perdeu o histórico (começou uma nova época): tente de novo em instantes."
    )


def _delivery(entry_id: str, fields: dict[str, str]) -> Delivery:
    return Delivery(
        DeliveryKind(fields["k"]),
        int(entry_id.split("-", 1)[0]),
        fields["s"],
        fields["t"] or None,
        fields["x"],
    )


def _from_flat(entry: Sequence) -> Delivery:
    """A delivery from a Lua reply entry: [id, [field, value, ...]]."""
    entry_id, flat = entry
    return _delivery(entry_id, dict(zip(flat[::2], flat[1::2], strict=True)))


class RedisLog:
    """The shared message log in Redis (see the module docstring for the keys).

    Args:
        url: ``redis://HOST:PORT/DB``.
        retention: how many of the newest messages reads return.
        prefix: key prefix, so several chats (or tests) can share one Redis.
        slack: extra stream entries kept beyond ``retention`` for lagging followers.
        batch: at most this many entries per XREAD (and per ``deliver`` call).

    ``deliver`` gets a message after :meth:`append` returns (the follower reads it
    back from the stream), on the event loop that called :meth:`start`.
    """

    ordered = False  # concurrent append scripts may run in any order

    def __init__(
        self,
        url: str,
        retention: int = 1000,
        *,
        prefix: str = "wslab:chat:",
        slack: int = 10_000,
        batch: int = 500,
    ) -> None:
        self._retention = check_retention(retention)
        self._keep = retention + max(1, slack)
        self._batch = batch
        self._meta, self._log, self._done = f"{prefix}meta", f"{prefix}log", f"{prefix}done:"
        self._client = connect(url)
        # XREAD BLOCK holds its connection: the follower has its own client. It never
        # retries by itself: a lost connection may mean Redis restarted (empty, or
        # from an older copy), and the follower must check the epoch before it reads
        # on, which a silent reconnect and a fresh XREAD BLOCK would skip.
        self._reader = connect(
            url, reply_timeout=BLOCK_MS / 1000 + REPLY_TIMEOUT, single=True, retries=0
        )
        self._reader_id: int | None = None  # its CLIENT ID, to unblock it on close
        self._append = self._client.register_script(APPEND)
        self._ensure = self._client.register_script(ENSURE_EPOCH)
        self._read = self._client.register_script(READ)
        self._epoch: str | None = None
        self._newest = 0  # the newest offset handed to deliver (or seen at start)
        self._deliver: Deliver | None = None
        self._lost: Lost | None = None
        self._outage: Outage | None = None
        self._follower: asyncio.Task | None = None
        self._recheck = asyncio.Event()  # check the epoch before the next XREAD
        self._waking: asyncio.Task | None = None  # ends the XREAD BLOCK for a recheck
        self._waiters: list[tuple[int, asyncio.Future]] = []  # reads awaiting the follower
        self._closed = False
        self.connected = True
        """Whether the follower's last call to Redis succeeded (True until one fails:
        :meth:`start` has just reached Redis)."""

    @property
    def retention(self) -> int:
        return self._retention

    @property
    def state(self) -> LogState:
        kept = min(self._newest, self._retention)
        return LogState(self._epoch or "", self._newest, self._newest - kept + 1)

    # -- lifecycle -------------------------------------------------------------------

    async def start(
        self, deliver: Deliver, lost: Lost | None = None, outage: Outage | None = None
    ) -> LogState:
        """Learn (or create) the epoch and follow the stream from its newest entry.

        ``lost(epoch)`` is called when this node can no longer vouch that ``deliver``
        got every message in order: Redis lost its data (a new epoch), or this node fell
        further behind than the stream keeps (same epoch). Delivery then goes on with
        messages committed after that point.

        ``outage(True)`` is called when the follower's call to Redis fails after it
        had succeeded, ``outage(False)`` when one succeeds again (it then reads on
        from the last id it delivered, so nothing committed meanwhile is skipped).
        """
        if self._closed:
            raise StoreError("O histórico no Redis já foi fechado.")
        await self._learn_epoch()
        self._deliver, self._lost, self._outage = deliver, lost, outage
        if self._follower is None:
            try:
                self._reader_id = await self._reader.client_id()
            except FAILURES as error:
                raise failure(self._reader, error, "não consegui abrir o histórico") from error
            self._follower = asyncio.get_running_loop().create_task(
                self._follow(), name="wslab-redis-follower"
            )
        return self.state

    async def close(self) -> None:
        self._closed = True
        self._deliver = self._lost = self._outage = None
        if self._follower is not None:
            # Cancelling the task may leave it inside redis-py's blocked read until
            # XREAD's BLOCK ends: CLIENT UNBLOCK ends that read at once, and the loop,
            # seeing the log closed, returns.
            await self._unblock(self._follower.done)
            if not self._follower.done():
                self._follower.cancel()
            self._follower = None
        if self._waking is not None:
            self._waking.cancel()
        await self._client.aclose()
        await self._reader.aclose()

    # -- writes and reads ------------------------------------------------------------

    async def append(self, kind: DeliveryKind, sender: str, to: str | None, text: str) -> int:
        if self._closed:
            raise StoreError("O histórico no Redis foi fechado: a mensagem não foi guardada.")
        if self._epoch is None:
            await self._learn_epoch()
        token = secrets.token_hex(8)  # the same token on redis-py's one retry
        try:
            offset, _ = await self._append(
                keys=[self._meta, self._log, self._done + token],
                args=[self._epoch, self._keep, str(kind), sender, to or "", text, DONE_TTL],
            )
        except FAILURES as error:
            outcome = "a mensagem não foi confirmada (se ela não aparecer, envie de novo)"
            raise failure(self._client, error, outcome) from error
        if offset == 0:
            self._check_epoch_now()
            raise StoreError(
                "O Redis perdeu o histórico (começou uma nova época): a mensagem não foi "
                "guardada; reconecte para retomar."
            )
        return offset

    async def read_after(self, offset: int) -> tuple[LogState, list[Delivery]]:
        state, entries = await self._snapshot("after", offset, "", 0)
        return state, [_from_flat(entry) for entry in entries]

    async def recent(self, user: str, count: int) -> tuple[LogState, list[Delivery]]:
        if count <= 0:
            state, _ = await self._snapshot("after", 1 << 62, "", 0)
            return state, []
        state, entries = await self._snapshot("recent", 0, user, count)
        return state, [_from_flat(entry) for entry in reversed(entries)]

    async def _snapshot(self, mode: str, after: int, user: str, count: int):
        """One READ script call (one snapshot). When this node follows the stream, it
        then waits, at most ``CATCH_UP`` s, until the follower has handed everything
        the snapshot covers to ``deliver``: a replay never runs ahead of the live
        messages the hub gets, so no session receives a message twice."""
        if self._epoch is None:
            await self._learn_epoch()
        try:
            epoch, newest, oldest, entries = await self._read(
                keys=[self._meta, self._log],
                args=[self._epoch, self._retention, mode, after, user, count],
            )
        except FAILURES as error:
            raise failure(self._client, error, "não consegui ler o histórico") from error
        if newest < 0:
            self._check_epoch_now()
            raise _epoch_changed()
        if self._follower is not None and newest > self._newest:
            await self._caught_up(epoch, newest)
        return LogState(epoch, newest, oldest), entries

    async def _caught_up(self, epoch: str, offset: int) -> None:
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append((offset, waiter))
        try:
            await asyncio.wait_for(asyncio.shield(waiter), CATCH_UP)
        except TimeoutError:
            raise StoreError(
                "Este nó não acompanhou o Redis a tempo: tente de novo em instantes."
            ) from None
        finally:
            if not waiter.done():
                waiter.cancel()
            self._waiters = [(o, w) for o, w in self._waiters if w is not waiter]
        if epoch != self._epoch:
            raise _epoch_changed()

    # -- the follower ----------------------------------------------------------------

    def _check_epoch_now(self) -> None:
        """Redis refused this node's epoch: have the follower learn the new one (and
        call ``lost``) now, not when its XREAD BLOCK ends, since until then every
        append of this node is refused."""
        self._recheck.set()
        if self._follower is not None and (self._waking is None or self._waking.done()):
            self._waking = asyncio.get_running_loop().create_task(
                self._unblock(lambda: not self._recheck.is_set()), name="wslab-redis-wake"
            )

    async def _unblock(self, done) -> None:
        """CLIENT UNBLOCK the follower's XREAD, again every 50 ms (it may not have
        reached the XREAD yet), until ``done()`` or one block and reply have passed."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + BLOCK_MS / 1000 + REPLY_TIMEOUT
        while not done() and loop.time() < deadline and self._follower is not None:
            if self._reader_id is not None:
                with contextlib.suppress(*FAILURES):
                    await self._client.client_unblock(self._reader_id)
            await asyncio.wait({self._follower}, timeout=0.05)

    async def _learn_epoch(self) -> bool:
        """Ask Redis for the epoch (creating one if it lost it); True if it changed."""
        try:
            epoch, newest = await self._ensure(
                keys=[self._meta], args=[self._epoch or "", self._newest, secrets.token_hex(8)]
            )
        except FAILURES as error:
            raise failure(self._client, error, "não consegui abrir o histórico") from error
        if epoch == self._epoch:
            return False
        known = self._epoch is not None
        self._epoch, self._newest = epoch, newest
        self._wake(everyone=True)
        return known

    async def _follow(self) -> None:
        """XREAD BLOCK from the last delivered id until the log is closed; after an
        error, back off (jittered, at most 2 s) and continue from the same id, checking
        the epoch first."""
        failures = 0
        check = trust = False
        while not self._closed:
            try:
                if check or self._recheck.is_set():
                    self._recheck.clear()
                    changed = await self._learn_epoch()
                    self._reached(True)
                    if changed:
                        self._report_lost()
                    else:
                        trust = check == "tag"  # same epoch after all: take the entry
                    check = False
                if self._reader_id is None:
                    self._reader_id = await self._reader.client_id()
                reply = await self._reader.xread(
                    {self._log: f"{self._newest}-0"}, count=self._batch, block=BLOCK_MS
                )
                self._reached(True)
                failures = 0
                if not reply:
                    check = True  # idle: did Redis come back empty meanwhile?
                    continue
                check = "tag" if self._take(reply[0][1], trust) else False
                trust = False
            except asyncio.CancelledError:
                raise
            except (*FAILURES, StoreError) as error:
                if self._closed:
                    return
                check, self._reader_id = True, None
                self._reached(False)
                failures += 1
                if failures == 1:
                    logger.warning("redis follower: %s", error)
                await asyncio.sleep(min(2.0, 0.05 * 2 ** min(failures, 6)) * random.uniform(0.5, 1))

    def _reached(self, connected: bool) -> None:
        """Note whether the follower's call reached Redis; tell ``outage`` on a change."""
        if connected == self.connected:
            return
        self.connected = connected
        if self._outage is not None:
            try:
                self._outage(not connected)
            except Exception:
                logger.exception("outage callback failed")

    def _take(self, entries: list, trust: bool) -> bool:
        """Deliver a batch in order; True when an entry carries another epoch (Redis
        lost its data and others wrote since), which stops the batch until the epoch
        is checked. ``trust``: the epoch was just checked, take the entries as they are.
        """
        messages = []
        for entry_id, fields in entries:
            if not trust and fields.get("e") != self._epoch:
                self._hand(messages)
                return True
            message = _delivery(entry_id, fields)
            if message.offset != self._newest + 1:
                self._hand(messages)
                logger.warning(
                    "redis follower fell behind the stream: %d..%d trimmed",
                    self._newest + 1,
                    message.offset - 1,
                )
                self._newest = message.offset - 1
                self._report_lost()
            messages.append(message)
            self._newest = message.offset
        self._hand(messages)
        return False

    def _hand(self, messages: list[Delivery]) -> None:
        if messages and self._deliver is not None:
            try:
                self._deliver(tuple(messages))
            except Exception:  # a bug downstream must not stop delivery to the others
                logger.exception("deliver failed")
        messages.clear()
        self._wake()

    def _wake(self, everyone: bool = False) -> None:
        """Resolve the reads waiting for an offset this node has now delivered."""
        for offset, waiter in self._waiters:
            if (everyone or offset <= self._newest) and not waiter.done():
                waiter.set_result(None)

    def _report_lost(self) -> None:
        if self._lost is not None:
            try:
                self._lost(self._epoch)
            except Exception:
                logger.exception("lost callback failed")
