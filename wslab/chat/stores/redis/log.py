"""The shared message log in Redis/Valkey: any number of nodes pointed at one Redis (or
at one primary found through Sentinels) share one log and one epoch.

The design follows Centrifugo's Redis engine (centrifugal/centrifuge, its broker's
"add history" script): a Lua script, atomic, allocates offsets and appends each message
to a stream whose entry id is ``<offset>-0`` (so offsets and stream ids agree). Each node
writes through its own :class:`~.writer.Writer` (its lines in call order, many per round
trip, confirmed on the replicas when there are replicas) and follows the log with one
task that blocks on the commits stream (``XREAD BLOCK``) and reads the log up to the
newest committed offset (``XRANGE``), handing each message to its own hub: every node
delivers in the same order, and a sender's echo comes back the same way as everyone
else's copy.

**The invariant.** No session ever receives, and no echo ever reports, an offset that a
failover can take back: followers and reads never go past the committed offset ``c``,
which the writers advance only after every replica received the entries below it and
one has them on disk (:mod:`.writer`, :mod:`.replicas`). Entries above ``c`` (a batch
whose confirmation failed, the old primary's tail) are invisible until a later round
confirms them, or are discarded by the failover; either way nobody saw them.

Keys (``prefix`` defaults to ``wslab:chat:``)::

    {prefix}meta     hash   e: the epoch, s: the newest offset, c: the committed offset
    {prefix}log      stream entry "<offset>-0": k kind, s sender, t to ("" for none),
                            x text, e epoch, i the line's id ("" for none)
    {prefix}commits  stream entry "<c>-0" each time c moves up (the newest ~1,000 kept)
    {prefix}writer:<id>     one writer's last appended offset (expires)
    {prefix}done:<token>    a round's offsets, for 30 s, so that a retried round
                            is not stored twice
    {prefix}ids:<sender>:<id>   "<offset>:<fingerprint>" of the line with that id,
                            for RESEND_SECONDS: a line sent again is not stored twice
                            (written in the same script as the entry: a failover
                            keeps both or neither)

The epoch is a random string created in Redis by whoever finds none (inside a script):
it changes only when Redis has lost the data (it came back empty, or with fewer
messages than this node delivered). A failover that kept the data keeps the epoch and
the offsets: resumes across it are recovered and exact. An append names the epoch its
node knows and is refused, storing nothing, when Redis has another: no message is ever
acknowledged under an epoch its sender's session does not know.

Retention: reads return only the newest ``retention`` committed messages (exact, as in
memory); the stream itself is trimmed with ``MAXLEN ~`` to about ``retention + slack``,
so a follower that lags behind by less than ``slack`` messages still finds every entry.

Every Redis failure becomes :class:`StoreError` with one pt-BR sentence
(:mod:`.client`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import secrets
from collections.abc import Callable, Sequence
from typing import Any, cast

from redis.asyncio.sentinel import SentinelConnectionPool

from ...errors import StoreError
from ...rules.messages import Kind, Message
from .. import Deliver, LogState, Lost, Outage, check_retention
from .client import FAILURES, REPLY_TIMEOUT, SentinelService, Where, connect, failure
from .replicas import Replicas
from .writer import Keys, Writer

__all__ = ["RedisLog"]

logger = logging.getLogger(__name__)

BLOCK_MS = 1000  # one XREAD BLOCK; the follower checks the epoch at least this often
CATCH_UP = 2.0  # seconds a read waits for this node's follower to reach its snapshot

# KEYS: meta. ARGV: the epoch this node knows ('' for none), the newest offset it
# delivered, a fresh epoch. Makes the fresh epoch current when Redis has none, or when
# it has this node's epoch but fewer messages than this node delivered (it came back
# from an older copy: its offsets would be reused). Returns {epoch, committed, created}.
ENSURE_EPOCH = """
local meta = redis.call('HMGET', KEYS[1], 'e', 's', 'c')
local epoch, newest = meta[1], tonumber(meta[2] or '0')
local created = 0
if not epoch or (epoch == ARGV[1] and newest < tonumber(ARGV[2])) then
  epoch = ARGV[3]
  redis.call('HSET', KEYS[1], 'e', epoch)
  created = 1
end
return {epoch, tonumber(meta[3] or meta[2] or '0'), created}
"""

# KEYS: meta, log. ARGV: expected epoch, retention, mode ('after' or 'recent'), after
# (offset), user, count (for 'after': at most this many, 0 for all). One snapshot of the committed messages: {epoch, newest,
# oldest, entries}, newest being the committed offset, entries oldest first for
# 'after' and newest first for 'recent'; newest -1 when Redis's epoch is not the
# expected one. 'recent' scans the retention window 100 entries at a time. Declared
# read-only, so a primary short of replicas (min-replicas-to-write) still answers it.
READ = """#!lua flags=no-writes
local meta = redis.call('HMGET', KEYS[1], 'e', 's', 'c')
local epoch, newest = meta[1], tonumber(meta[3] or meta[2] or '0')
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
    if tonumber(ARGV[6]) > 0 then
      found = redis.call('XRANGE', KEYS[2], from .. '-0', newest .. '-0', 'COUNT', ARGV[6])
    else
      found = redis.call('XRANGE', KEYS[2], from .. '-0', newest .. '-0')
    end
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


def _delivery(entry_id: str, fields: dict[str, str]) -> Message:
    return Message(
        Kind(fields["k"]),
        int(entry_id.split("-", 1)[0]),
        fields["s"],
        fields["t"] or None,
        fields["x"],
        fields.get("i") or None,
    )


def _from_flat(entry: Sequence[Any]) -> Message:
    """A delivery from a Lua reply entry: [id, [field, value, ...]]."""
    entry_id, flat = entry
    return _delivery(entry_id, dict(zip(flat[::2], flat[1::2], strict=True)))


class RedisLog:
    """The shared message log in Redis (see the module docstring for the keys).

    Args:
        where: ``redis://HOST:PORT/DB``, or a :class:`~.client.SentinelService` (a
            primary with replicas: appends are then confirmed on the replicas).
        retention: how many of the newest messages reads return.
        prefix: key prefix, so several chats (or tests) can share one Redis.
        slack: extra stream entries kept beyond ``retention`` for lagging followers.
        batch: at most this many entries per XRANGE (and per ``deliver`` call).

    ``deliver`` gets a message after :meth:`append` returns (the follower reads it
    back from the stream once it is committed), on the event loop that called
    :meth:`start`.
    """

    ordered = True  # one writer per node sends its lines in call order

    def __init__(
        self,
        where: Where,
        retention: int = 1000,
        *,
        prefix: str = "wslab:chat:",
        slack: int = 10_000,
        batch: int = 500,
    ) -> None:
        self._retention = check_retention(retention)
        self._batch = batch
        self._meta, self._log = f"{prefix}meta", f"{prefix}log"
        self._commits = f"{prefix}commits"
        self._client = connect(where)
        self._replicas = Replicas(required=isinstance(where, SentinelService))
        mine = f"{prefix}writer:{secrets.token_hex(8)}"
        keys = Keys(self._meta, self._log, self._commits, mine, f"{prefix}done:", f"{prefix}ids:")
        # A round must run once or fail: its writer's client never retries.
        self._writer_client = connect(where, retries=0)
        self._writer = Writer(
            self._writer_client,
            keys,
            self._replicas,
            keep=retention + max(1, slack),
            epoch_refused=self._check_epoch_now,
        )
        # XREAD BLOCK holds its connection: the follower has its own client. It never
        # retries by itself: a lost connection may mean Redis restarted (empty, or
        # from an older copy), and the follower must check the epoch before it reads
        # on, which a silent reconnect and a fresh XREAD BLOCK would skip.
        self._reader = connect(where, reply_timeout=BLOCK_MS / 1000 + REPLY_TIMEOUT, retries=0)
        self._reader_id: int | None = None  # its CLIENT ID, to unblock it on close
        self._ensure = self._client.register_script(ENSURE_EPOCH)
        self._read = self._client.register_script(READ)
        self._epoch: str | None = None
        self._newest = 0  # the newest offset handed to deliver (or committed at start)
        self._deliver: Deliver | None = None
        self._lost: Lost | None = None
        self._outage: Outage | None = None
        self._follower: asyncio.Task[None] | None = None
        self._recheck = asyncio.Event()  # check the epoch before the next XREAD
        self._waking: asyncio.Task[None] | None = None  # ends the XREAD BLOCK for a recheck
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []  # reads awaiting the follower
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
        """Learn (or create) the epoch and follow the log from its committed offset.

        ``lost(epoch)`` is called when this node can no longer vouch that ``deliver``
        got every message in order: Redis lost its data (a new epoch), or this node fell
        further behind than the stream keeps (same epoch). Message then goes on with
        messages committed after that point.

        ``outage(True)`` is called when the follower's call to Redis fails after it
        had succeeded, ``outage(False)`` when one succeeds again (it then reads on
        from the last offset it delivered, so nothing committed meanwhile is skipped).
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

    async def check(self) -> None:
        """Redis answers; with replicas, the server the Sentinels name is a primary
        with a replica attached (without one, nothing can be confirmed)."""
        try:
            if not self._replicas.required:
                await self._client.ping()
                return
            # redis-py leaves execute_command unannotated (a reply of any shape).
            role = await self._client.execute_command("ROLE")  # type: ignore[no-untyped-call]
        except FAILURES as error:
            raise failure(self._client, error, "o nó não está pronto") from error
        if role[0] != "master" or not role[2]:
            raise StoreError(
                "O primário do Valkey está sem réplica: nenhuma mensagem pode ser confirmada "
                "agora; o nó não está pronto."
            )

    async def close(self) -> None:
        self._closed = True
        self._deliver = self._lost = self._outage = None
        await self._writer.close()
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
        await self._writer_client.aclose()
        await self._reader.aclose()

    # -- writes and reads ------------------------------------------------------------

    async def append(
        self, kind: Kind, sender: str, to: str | None, text: str, client_id: str | None = None
    ) -> int:
        """Queue the line for this node's writer (in call order: the queueing happens
        before the first await when the epoch is known) and wait for its offset."""
        if self._closed:
            raise StoreError("O histórico no Redis foi fechado: a mensagem não foi guardada.")
        if self._epoch is None:
            await self._learn_epoch()
        return await self._writer.append(kind, sender, to, text, client_id)

    async def read_after(
        self, offset: int, limit: int | None = None
    ) -> tuple[LogState, list[Message]]:
        state, entries = await self._snapshot("after", offset, "", limit or 0)
        return state, [_from_flat(entry) for entry in entries]

    async def recent(self, user: str, count: int) -> tuple[LogState, list[Message]]:
        if count <= 0:
            state, _ = await self._snapshot("after", 1 << 62, "", 0)
            return state, []
        state, entries = await self._snapshot("recent", 0, user, count)
        return state, [_from_flat(entry) for entry in reversed(entries)]

    async def _snapshot(
        self, mode: str, after: int, user: str, count: int
    ) -> tuple[LogState, list[Any]]:
        """One READ script call (one snapshot of the committed messages). When this
        node follows the log, it then waits, at most ``CATCH_UP`` s, until the follower
        has handed everything the snapshot covers to ``deliver``: a replay never runs
        ahead of the live messages the hub gets, so no session receives a message twice.

        A snapshot older than what this node delivered (a new primary whose committed
        offset lags: the old one's last commit was not copied) is never answered: the
        writer seals (:meth:`.writer.Writer.seal`) and the read runs once more."""
        if self._epoch is None:
            await self._learn_epoch()
        assert self._epoch is not None  # learned, or _learn_epoch raised
        for attempt in (1, 2):
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
            if newest >= self._newest:
                break
            if attempt == 2:
                raise StoreError(
                    "O Redis ainda não confirmou o histórico que este nó já entregou: "
                    "tente de novo em instantes."
                )
            with contextlib.suppress(StoreError, TimeoutError):
                await asyncio.wait_for(self._writer.seal(), CATCH_UP)
        if self._follower is not None and newest > self._newest:
            await self._caught_up(epoch, newest)
        return LogState(epoch, newest, oldest), entries

    async def _caught_up(self, epoch: str, offset: int) -> None:
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
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

    async def _unblock(self, done: Callable[[], bool]) -> None:
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
            epoch, committed, _ = await self._ensure(
                keys=[self._meta], args=[self._epoch or "", self._newest, secrets.token_hex(8)]
            )
        except FAILURES as error:
            raise failure(self._client, error, "não consegui abrir o histórico") from error
        if epoch == self._epoch:
            return False
        known = self._epoch is not None
        self._epoch, self._newest = epoch, committed
        self._writer.epoch = epoch
        self._wake(everyone=True)
        return known

    async def _follow(self) -> None:
        """Block on the commits stream for an offset above the last one delivered,
        then read the log up to it; until the log is closed. After an error, back off
        (jittered, at most 2 s) and continue from the same offset, checking the epoch
        first."""
        failures = 0
        check: bool | str = False
        trust = False
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
                    {self._commits: f"{self._newest}-0"}, count=100, block=BLOCK_MS
                )
                assert isinstance(reply, list)  # RESP2, the client's: [[stream, entries]]
                self._reached(True)
                failures = 0
                if not reply:
                    check = True  # idle: did Redis come back empty meanwhile?
                    await self._follow_primary()
                    continue
                committed = int(reply[0][1][-1][0].split("-", 1)[0])
                check = "tag" if await self._read_up_to(committed, trust) else False
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

    async def _follow_primary(self) -> None:
        """With Sentinels: if they now name another primary, drop this node's idle
        connections to the old one. A primary paused past a failover comes back still
        calling itself primary, with nothing new to read, until the Sentinels demote
        it (~10 s): a follower blocked on it would deliver nothing meanwhile. One
        question to a Sentinel per pool, once per idle ``BLOCK_MS``."""
        for client in (self._reader, self._client, self._writer_client):
            pool = client.connection_pool
            if isinstance(pool, SentinelConnectionPool):
                # redis-py leaves the asyncio pool's get_master_address unannotated.
                await pool.get_master_address()  # type: ignore[no-untyped-call]

    async def _read_up_to(self, committed: int, trust: bool) -> bool:
        """Deliver the log's entries up to ``committed``, ``batch`` at a time; True
        when one carries another epoch (see :meth:`_take`)."""
        while self._newest < committed:
            # decode_responses: every id and field is a str (redis-py types any reply).
            entries = cast(
                "list[tuple[str, dict[str, str]]]",
                await self._reader.xrange(
                    self._log, f"{self._newest + 1}-0", f"{committed}-0", count=self._batch
                ),
            )
            if not entries:  # trimmed away while this node was behind
                logger.warning(
                    "redis follower fell behind the stream: %d..%d trimmed",
                    self._newest + 1,
                    committed,
                )
                self._newest = committed
                self._wake()
                self._report_lost()
                return False
            if self._take(entries, trust):
                return True
        return False

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

    def _take(self, entries: list[tuple[str, dict[str, str]]], trust: bool) -> bool:
        """Deliver a batch in order; True when an entry carries another epoch (Redis
        lost its data and others wrote since), which stops the batch until the epoch
        is checked. ``trust``: the epoch was just checked, take the entries as they are.
        """
        messages: list[Message] = []
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

    def _hand(self, messages: list[Message]) -> None:
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
                self._lost(self._epoch or "")
            except Exception:
                logger.exception("lost callback failed")
