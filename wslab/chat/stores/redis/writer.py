"""One node's writer of the shared log: the lines of all its connections, in the order
the node called :meth:`Writer.append`, many per round trip, and the committed offset
that followers never read past.

A round is one pipeline on one connection::

    EVALSHA APPEND  (the batch: offsets, stream entries)
    WAIT <replicas> 500   WAITAOF 1 1 500         (only with replicas)
    EVALSHA COMMIT  (advances the committed offset if the waits succeeded)
    ROLE                                          (only with replicas)

so a batch costs one round trip however many lines it carries: up to ``MAX_BATCH``
lines, and a new round starts as soon as the previous one returns, with everything
queued meanwhile (group commit). Measured on loopback with two replicas: about 2.5 ms
per round of 16 lines, 10 ms per round of 256.

**The committed offset** (``c`` in the meta hash, and a marker ``<c>-0`` in the
commits stream that followers block on) is the newest offset known to be on a replica:
COMMIT moves it only when ``WAIT`` and ``WAITAOF`` (read again inside the script,
where they do not block) say the batch reached the replicas
(:mod:`.replicas`). Everything at or below it survives the loss of the primary;
entries above it may vanish in a failover, so no follower delivers them, no read
returns them and no sender is told their offset until a later round commits them.
Without replicas (``--redis URL``), APPEND commits its own batch at once.

**Sealing.** After a failover the new primary may hold entries that no round
confirmed (they reached the replica, not the waits), and its committed offset may lag
(the old primary's last COMMIT may not have been copied). A round with no lines (a
*seal*) confirms everything the primary has and commits it; the writer seals when it
starts, after any failed round, and when a read asks for it (:meth:`Writer.seal`).

A round that a slow replica did not confirm in time (one that just attached and is
rewriting its AOF) keeps its lines waiting: the next rounds on the same primary confirm
everything before them, and after ``RECONFIRM`` such rounds in a row the lines fail. A
line whose round fails (the primary died, no replica confirmed in time, the epoch
changed) is answered with :class:`StoreError` and never echoed; it may still be
committed later by a seal (it reached the new primary), so the sentence tells the user
to send it again only if it does not appear.
"""

from __future__ import annotations

import asyncio
import logging
import random
import secrets
from collections.abc import Callable
from typing import NamedTuple

from redis import exceptions as redis_errors
from redis.asyncio import Redis

from ...errors import ReusedId, StoreError
from ...rules.messages import Kind, fingerprint
from ...rules.wire import RESEND_SECONDS
from .client import FAILURES, failure
from .replicas import Replicas

__all__ = ["APPEND", "COMMIT", "Keys", "MAX_BATCH", "Writer"]

LOST = (redis_errors.ConnectionError, redis_errors.TimeoutError, OSError)
"""A round that raised one of these may or may not have run: it is tried once more."""

logger = logging.getLogger(__name__)

MAX_BATCH = 1000  # lines per round, at most (~1,000 x 6 script arguments)
MINE_TTL_MS = 600_000  # the writer's last appended offset, kept this long
DONE_TTL = 30  # seconds a round's outcome is kept for its one retry
RECONFIRM = 2  # rounds in a row that may fail to confirm before their lines get errors

# A Lua function both scripts use: move the committed offset up to `upto`.
_COMMIT_TO = """
local function commit_to(meta, commits, upto)
  local c = tonumber(redis.call('HGET', meta, 'c') or '0')
  if upto > c then
    redis.call('HSET', meta, 'c', string.format('%d', upto))
    redis.call('XADD', commits, 'MAXLEN', '~', 1000, string.format('%d-0', upto),
               'c', string.format('%d', upto))
  end
end
"""

# KEYS: meta, log, commits, mine, done. ARGV: expected epoch, stream length to keep,
# commit now ('1': no replicas, the batch is committed as written), n, then n x (kind,
# sender, to, text, id ('' for none), fingerprint), then mine's TTL (ms), done's TTL
# (s), the ids' key prefix and their TTL (s). Returns {1, epoch, newest, offsets}: each
# line's offset, which for a line whose id its sender used before (an `ids` key holds
# "<offset>:<fingerprint>") is the first copy's, nothing stored again, or 0 if the
# first copy said something else (nothing stored); or {0, epoch} when Redis's epoch is
# not the expected one (nothing stored). `done` keeps the offsets and newest for a
# retry of the same round, which then stores nothing again. Always writes (`mine`, the
# newest offset), so WAIT after it has something to wait for even with no lines (a
# seal) or on a retry.
APPEND = (
    _COMMIT_TO
    + """
local epoch = redis.call('HGET', KEYS[1], 'e')
if epoch ~= ARGV[1] then
  return {0, epoch or ''}
end
local n = tonumber(ARGV[4])
local tail = 4 + 6 * n
local offsets, offset = {}, nil
local done = redis.call('GET', KEYS[5])
if done then
  for each in string.gmatch(done, '%d+') do
    offsets[#offsets + 1] = tonumber(each)
  end
  offset = table.remove(offsets)  -- kept last: the newest
else
  offset = tonumber(redis.call('HGET', KEYS[1], 's') or '0')
  redis.call('HSETNX', KEYS[1], 'c', string.format('%d', offset))
  local kept = {}
  for at = 5, tail, 6 do
    local id, first = ARGV[at + 4], false
    local key = ARGV[tail + 3] .. ARGV[at + 1] .. ':' .. id
    if id ~= '' then
      first = redis.call('GET', key)
    end
    if first then
      local stored, said = string.match(first, '^(%d+):(.*)$')
      offsets[#offsets + 1] = said == ARGV[at + 5] and tonumber(stored) or 0
    else
      offset = offset + 1
      offsets[#offsets + 1] = offset
      redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], string.format('%d-0', offset),
                 'k', ARGV[at], 's', ARGV[at + 1], 't', ARGV[at + 2], 'x', ARGV[at + 3],
                 'e', epoch, 'i', id)
      if id ~= '' then
        redis.call('SET', key, string.format('%d:', offset) .. ARGV[at + 5], 'EX',
                   ARGV[tail + 4])
      end
    end
    kept[#kept + 1] = string.format('%d', offsets[#offsets])
  end
  kept[#kept + 1] = string.format('%d', offset)
  redis.call('HSET', KEYS[1], 's', string.format('%d', offset))
  redis.call('SET', KEYS[5], table.concat(kept, ','), 'EX', ARGV[tail + 2])
end
redis.call('SET', KEYS[4], string.format('%d', offset), 'PX', ARGV[tail + 1])
if ARGV[3] == '1' then
  commit_to(KEYS[1], KEYS[3], offset)
end
return {1, epoch, offset, offsets}
"""
)

# KEYS: meta, commits, mine. ARGV: 'wait' and the replicas that must have received
# this connection's last write, or 'force' and an offset already confirmed. 'wait'
# reads WAIT and WAITAOF (they do not block inside a script) and commits `mine` only
# if every replica received the write and one has it on disk. Returns {committed
# (0 or 1), offset}.
COMMIT = (
    _COMMIT_TO
    + """
local upto
if ARGV[1] == 'wait' then
  upto = tonumber(redis.call('GET', KEYS[3]) or '0')
  local received = redis.call('WAIT', 0, 0)
  local on_disk = redis.call('WAITAOF', 0, 0, 0)
  if received < tonumber(ARGV[2]) or on_disk[1] < 1 or on_disk[2] < 1 then
    return {0, upto}
  end
else
  upto = tonumber(ARGV[2])
end
commit_to(KEYS[1], KEYS[2], upto)
return {1, upto}
"""
)


class Keys(NamedTuple):
    """The log's keys (see :mod:`.log`)."""

    meta: str
    log: str
    commits: str
    mine: str  # this writer's last appended offset
    done: str  # prefix of a round's outcome, for its retry
    ids: str  # prefix of the lines' ids: <ids><sender>:<id> -> "<offset>:<fingerprint>"


class _Line(NamedTuple):
    kind: str
    sender: str
    to: str
    text: str
    client_id: str
    done: asyncio.Future[int]


class Writer:
    """Appends lines in call order, in rounds (see the module docstring).

    Args:
        client: a redis-py client that never retries (a retried round could store a
            batch twice, and its WAIT would count another connection's writes).
        keys: the log's keys.
        replicas: how a write is confirmed (:class:`.replicas.Replicas`).
        keep: the stream's length to keep (``MAXLEN ~``).
        epoch_refused: called when Redis refused the epoch this writer appends under.
    """

    def __init__(
        self,
        client: Redis,
        keys: Keys,
        replicas: Replicas,
        *,
        keep: int,
        epoch_refused: Callable[[], None],
    ) -> None:
        self._client = client
        self._keys = keys
        self._replicas = replicas
        self._keep = keep
        self._epoch_refused = epoch_refused
        self._append_sha = self._commit_sha = ""
        self.epoch: str | None = None
        self._queue: list[_Line] = []
        self._seals: list[asyncio.Future[int]] = []  # waiting for the next confirmed round
        self._sealing = replicas.required  # the next round confirms even with no lines
        self._force: int | None = None  # a confirmed offset still to commit
        # Batches appended whose confirmation failed once (a slow replica), with their
        # offsets: the next confirmed round on the same primary confirms them.
        self._pending: list[tuple[list[_Line], list[int]]] = []
        self._unconfirmed = 0  # rounds in a row that were not confirmed
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    # -- the interface -----------------------------------------------------------------

    def append(
        self, kind: Kind, sender: str, to: str | None, text: str, client_id: str | None = None
    ) -> asyncio.Future[int]:
        """Queue a line now (so lines keep the order of the calls); the future gives
        its offset once the line is committed (the first copy's, for a line sent again:
        see :meth:`wslab.chat.stores.MessageLog.append`), or raises StoreError."""
        if self._closed:
            raise StoreError("O histórico no Redis foi fechado: a mensagem não foi guardada.")
        done: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._queue.append(_Line(str(kind), sender, to or "", text, client_id or "", done))
        self._start()
        return done

    def seal(self) -> asyncio.Future[int]:
        """Ask for a round that confirms and commits everything the primary holds;
        the future resolves when one succeeded (or raises StoreError if it failed)."""
        done: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._seals.append(done)
        self._sealing = True
        self._start()
        return done

    async def close(self) -> None:
        """Stop after the current round; lines still queued get StoreError."""
        self._closed = True
        self._wake.set()
        if self._task is not None:
            await asyncio.wait({self._task}, timeout=5.0)
            self._task.cancel()
        closed = StoreError("O histórico no Redis foi fechado: a mensagem não foi guardada.")
        for lines in [*(lines for lines, _ in self._pending), self._queue]:
            self._fail(lines, closed)
        self._queue, self._pending = [], []
        for seal in self._seals:
            seal.cancel()

    # -- the loop ----------------------------------------------------------------------

    def _start(self) -> None:
        self._wake.set()
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name="wslab-redis-writer"
            )

    async def _run(self) -> None:
        failures = 0
        while not self._closed:
            if not (self._queue or self._sealing or self._force is not None):
                self._wake.clear()
                await self._wake.wait()
                continue
            batch, self._queue = self._queue[:MAX_BATCH], self._queue[MAX_BATCH:]
            try:
                if self._force is not None and not batch and not self._sealing:
                    await self._commit_only(self._force)
                else:
                    await self._round(batch)
                failures = 0
            except StoreError as error:
                # The batch, and the ones still waiting for a confirmation (a failed
                # round may be a failover: their offsets may be taken back).
                for lines, _ in self._pending:
                    self._fail(lines, error)
                self._pending, self._unconfirmed = [], 0
                self._fail(batch, error)
                self._sealing = self._replicas.required
                # The next connections ask again where the primary is (a refusal may
                # mean this one is no longer it, or it has no replica).
                await self._client.connection_pool.disconnect(inuse_connections=False)
                failures += 1
                if failures == 1:
                    logger.warning("redis writer: %s", error)
                await asyncio.sleep(min(1.0, 0.05 * 2 ** min(failures, 5)) * random.uniform(0.5, 1))

    async def _round(self, batch: list[_Line]) -> None:
        """One round (see the module docstring). Raises StoreError when the batch was
        not committed; resolves the batch's futures when it was."""
        if not self._append_sha:
            await self._load()
        keys, replicas = self._keys, self._replicas
        arguments: list[str | int] = [
            self.epoch or "",
            self._keep,
            "0" if replicas.required else "1",
        ]
        arguments.append(len(batch))
        for line in batch:
            said = fingerprint(line.kind, line.to, line.text)
            arguments += [line.kind, line.sender, line.to, line.text, line.client_id, said]
        arguments += [MINE_TTL_MS, DONE_TTL, keys.ids, RESEND_SECONDS]
        done = f"{keys.done}{secrets.token_hex(8)}"
        for attempt in (1, 2):
            try:
                async with self._client.pipeline(transaction=False) as pipe:
                    pipe.execute_command(
                        "EVALSHA", self._append_sha, 5, keys.meta, keys.log, keys.commits,
                        keys.mine, done, *arguments,
                    )  # fmt: skip
                    if replicas.required:
                        asked = replicas.queue_waits(pipe)
                        pipe.execute_command(
                            "EVALSHA", self._commit_sha, 3, keys.meta, keys.commits,
                            keys.mine, "wait", asked,
                        )  # fmt: skip
                        replicas.queue_role(pipe)
                    replies = await pipe.execute(raise_on_error=False)
                break
            except LOST as error:
                # A connection that went stale (Redis restarted, a failover): once more
                # on a new one; the round's `done` key keeps a batch from being stored
                # twice, and its write gives the new connection's WAIT the batch to
                # wait for.
                if attempt == 2:
                    raise self._failed(error) from error
                # A new connection may reach a new primary: batches waiting for a
                # confirmation on the old one cannot be vouched for there.
                for lines, _ in self._pending:
                    self._fail(lines, self._failed(error))
                self._pending, self._unconfirmed = [], 0
            except FAILURES as error:
                raise self._failed(error) from error
        appended = replies[0]
        if isinstance(appended, redis_errors.NoScriptError):
            self._append_sha = ""  # a new primary without our scripts: load, then again
            self._queue[:0] = batch
            return
        if isinstance(appended, BaseException):
            raise self._failed(appended)
        if appended[0] == 0:
            self._epoch_refused()
            raise StoreError(
                "O Redis perdeu o histórico (começou uma nova época): a mensagem não foi "
                "guardada; reconecte para retomar."
            )
        newest, offsets = appended[2], appended[3]
        self._pending.append((batch, offsets))
        if replicas.required:
            received, on_disk, committed, role = replies[1:]
            if not (isinstance(committed, list) and committed[0] == 1):
                if not replicas.confirmed(asked, received, on_disk, role):
                    self._unconfirmed += 1
                    if self._unconfirmed > RECONFIRM or isinstance(received, BaseException):
                        raise StoreError(
                            "O Valkey não confirmou a cópia da mensagem numa réplica a "
                            "tempo: ela não foi confirmada (se ela não aparecer, envie de novo)."
                        )
                    # A replica was slow (one that just attached, rewriting its AOF):
                    # a seal on the same primary confirms this batch with everything
                    # before it; the lines wait for it.
                    self._sealing = True
                    return
                self._force = newest  # confirmed with the replicas ROLE named now
            else:
                replicas.confirmed(asked, received, on_disk, role)  # note who is attached
                if self._force is not None and committed[1] >= self._force:
                    self._force = None
        self._sealing = False
        self._unconfirmed = 0
        pending, self._pending = self._pending, []
        for lines, offsets in pending:
            for line, offset in zip(lines, offsets, strict=True):
                if line.done.done():
                    continue
                if offset == 0:
                    line.done.set_exception(ReusedId())
                else:
                    line.done.set_result(offset)
        seals, self._seals = self._seals, []
        for seal in seals:
            if not seal.done():
                seal.set_result(newest)

    async def _commit_only(self, offset: int) -> None:
        try:
            await self._client.evalsha(
                self._commit_sha, 3, self._keys.meta, self._keys.commits, self._keys.mine,
                "force", offset,
            )  # fmt: skip
        except FAILURES as error:
            raise self._failed(error) from error
        self._force = None

    async def _load(self) -> None:
        try:
            self._append_sha = await self._client.script_load(APPEND)
            self._commit_sha = await self._client.script_load(COMMIT)
        except FAILURES as error:
            raise self._failed(error) from error

    def _failed(self, error: BaseException) -> StoreError:
        if isinstance(error, redis_errors.NoScriptError):
            self._append_sha = ""  # load the scripts again before the next round
        outcome = "a mensagem não foi confirmada (se ela não aparecer, envie de novo)"
        return failure(self._client, error, outcome)

    @staticmethod
    def _fail(lines: list[_Line], error: StoreError) -> None:
        for line in lines:
            if not line.done.done():
                line.done.set_exception(error)
