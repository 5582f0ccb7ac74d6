"""The KDF's worker threads, shared in the order of a :class:`LoginQueue`.

scrypt costs tens of milliseconds of a core and 16 MiB per hash
(:mod:`wslab.chat.kdf`), so at most ``workers`` run at once, in threads
(``hashlib.scrypt`` releases the GIL). A login that finds every worker busy waits its
turn in the queue: logins of known names before registrations, networks in turn
(:mod:`wslab.chat.rules.logins`), at most ``capacity`` waiting and each at most
``max_wait`` seconds; a login refused to make room, or that waited too long, gets
:class:`Busy`. :attr:`KdfPool.contended` tells the node when the pool is busy, so
that the budgets for new names and resumes bite only then.

Memory: ``workers`` x 16 MiB while hashing, plus ~300 bytes per waiting login.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable, Hashable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from ..rules.logins import LoginQueue, Tier

__all__ = ["Busy", "KdfPool"]

T = TypeVar("T")


class Busy(Exception):
    """No turn of the KDF for this login: refused to make room, or waited too long."""


class KdfPool:
    """``workers`` threads running KDF calls, the waiting ones in a :class:`LoginQueue`.

    Args:
        workers: hashes at once.
        capacity: logins waiting at most.
        max_wait: seconds a login waits for its turn at most.
    """

    def __init__(self, workers: int, capacity: int, max_wait: float = 10.0) -> None:
        self.workers = max(1, workers)
        self.max_wait = max_wait
        self._executor = ThreadPoolExecutor(self.workers, "wslab-kdf")
        self._queue = LoginQueue(max(1, capacity))
        self._turns: dict[Hashable, asyncio.Future[None]] = {}
        self._ids = itertools.count()
        self.busy = 0  # workers hashing now

    @property
    def contended(self) -> bool:
        """Whether every worker is busy (a new login would wait)."""
        return self.busy >= self.workers

    @property
    def waiting(self) -> int:
        return len(self._queue)

    async def run(
        self, tier: Tier, network: Hashable, function: Callable[..., T], *args: object
    ) -> T:
        """``function(*args)`` in a worker, once it is this login's turn.

        Raises:
            Busy: refused to make room for a login that goes first, or no turn came
                within ``max_wait`` seconds.
        """
        if self.busy >= self.workers or len(self._queue):
            await self._wait_turn(tier, network)
        else:
            self.busy += 1
        try:
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(self._executor, function, *args)
        finally:
            self._release()

    async def _wait_turn(self, tier: Tier, network: Hashable) -> None:
        ticket = next(self._ids)
        turn: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        evicted = self._queue.push(ticket, tier, network)
        if evicted == ticket:
            raise Busy
        self._turns[ticket] = turn
        if evicted is not None:
            self._turns.pop(evicted).set_exception(Busy())
        try:
            async with asyncio.timeout(self.max_wait):
                await turn  # the worker was handed over (busy counts it already)
        except TimeoutError:
            self._give_up(ticket, turn)
            raise Busy from None
        except BaseException:  # Busy (evicted), or the login was cancelled
            self._give_up(ticket, turn)
            raise

    def _give_up(self, ticket: int, turn: asyncio.Future[None]) -> None:
        self._turns.pop(ticket, None)
        handed = turn.done() and not turn.cancelled() and turn.exception() is None
        if not self._queue.remove(ticket) and handed:
            self._release()  # the turn came as this login gave up: hand it on

    def _release(self) -> None:
        """A worker is free: hand it to the next login waiting, if any."""
        while (ticket := self._queue.pop()) is not None:
            turn = self._turns.pop(ticket)
            if not turn.done():
                turn.set_result(None)
                return
        self.busy -= 1

    def close(self) -> None:
        for turn in self._turns.values():
            if not turn.done():
                turn.set_exception(Busy())
        self._turns.clear()
        self._executor.shutdown(wait=False, cancel_futures=True)
