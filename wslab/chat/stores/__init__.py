"""Where the chat keeps what must outlive a connection: the message log, the
registered users and what the limits count, behind three small interfaces.

- :class:`MessageLog` assigns offsets, keeps the newest ``retention`` messages and
  hands every committed message, once and in offset order, to the callback given to
  :meth:`MessageLog.start`. Routing (who sees what) is not its business: the hub
  (:mod:`wslab.chat.rules.hub`) decides that.
- :class:`CredentialStore` keeps one encoded secret record per user name, registered
  once: the first writer of a name wins.
- :class:`Limiter` keeps what the limits count (token buckets, wrong secrets, the
  addresses a name logged in from), so that nodes sharing a store share their limits.

Implementations: :mod:`.memory` (notebooks, simulation, property tests), :mod:`.sqlite`
(one node, the embedded default), :mod:`.redis` (several nodes sharing one Redis or
Valkey; :mod:`.valkey` starts a local server for tests). One contract suite
(tests/chat/stores/test_contract.py) runs against every implementation. Methods are coroutines
so that a store may do I/O; the in-memory ones never suspend.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from typing import Protocol

from ..rules.messages import Kind, LogState, Message

__all__ = [
    "CredentialStore",
    "Deliver",
    "Limiter",
    "LogState",
    "Lost",
    "MessageLog",
    "Outage",
    "Presence",
    "check_retention",
]

Deliver = Callable[[Sequence[Message]], None]
"""Receives committed messages, oldest first, on the event loop that started the log."""

Lost = Callable[[str], None]
"""Told the epoch in force when the log can no longer vouch that ``deliver`` got every
message in order (a shared store lost its data, or this node fell too far behind);
the caller should end its sessions so that they resume (see :meth:`MessageLog.start`)."""

Outage = Callable[[bool], None]
"""Told ``True`` when a shared store stopped answering (appends and reads now fail, and
live delivery stops), ``False`` when it answers again (delivery goes on from where it
stopped); the caller tells its open sessions."""


class MessageLog(Protocol):
    """The shared history: offsets from one source, an epoch, bounded retention.

    ``ordered`` is what the log promises about order: True when appends are stored in
    the order they are called (memory; SQLite's writer thread; Redis, each node's one
    writer), so a connection may have several lines waiting for their commit at once and
    still see them stored in the order sent; False when concurrent appends may be stored
    in any order, so each connection waits for one line at a time.
    """

    ordered: bool

    @property
    def retention(self) -> int:
        """How many of the newest messages are kept for resumes and history."""

    @property
    def state(self) -> LogState:
        """The state as of the newest message handed to the callback."""

    async def start(
        self, deliver: Deliver, lost: Lost | None = None, outage: Outage | None = None
    ) -> LogState:
        """Begin handing committed messages to ``deliver``; returns the state then.

        ``lost`` (optional) is called with the epoch now in force when delivery had to
        skip messages: a shared store that lost its data starts a new epoch, or a node
        that fell behind further than the store keeps. Message then goes on with
        messages committed after that point; live sessions should be closed so that
        they resume (and learn, from the epoch or the gap, what they lost). Stores of
        one process never call it.

        ``outage`` (optional) is called when a shared store stops and starts answering
        again (see :data:`Outage`). Stores of one process never call it: their
        failures are the failures of each append.

        Raises:
            StoreError: the store cannot be opened (one pt-BR sentence says why).
        """

    async def append(
        self, kind: Kind, sender: str, to: str | None, text: str, client_id: str | None = None
    ) -> int:
        """Store one message and return its offset once it is committed.

        ``deliver`` gets the message too, in offset order (before or after this
        returns, depending on the store). Raises StoreError when nothing was stored.

        ``client_id`` (the line's id, :mod:`wslab.chat.rules.wire`) is kept with the
        message; when ``sender`` already appended a line with that id less than
        :data:`~wslab.chat.rules.wire.RESEND_SECONDS` ago, nothing is stored and the
        first line's offset is returned once it is committed (``deliver`` got it, or
        gets it, once); :class:`~wslab.chat.errors.ReusedId` when that first line said
        something else (another kind, recipient or text: nothing stored). Stores remember each id that long, and not much longer: their
        memory of ids is bounded by the lines appended in that time.
        """

    async def read_after(
        self, offset: int, limit: int | None = None
    ) -> tuple[LogState, list[Message]]:
        """Every kept message with an offset above ``offset``, oldest first; at most
        ``limit`` of them when given (a page of a replay read lazily).

        The state and the messages describe one snapshot. Every message a read
        returns has been handed to ``deliver`` when the read returns (a shared store
        waits, bounded, for its follower), so a replay never runs ahead of the live
        messages the hub gets.
        """

    async def recent(self, user: str, count: int) -> tuple[LogState, list[Message]]:
        """The newest ``count`` kept messages ``user`` may see, oldest first (one
        snapshot, as :meth:`read_after`)."""

    async def check(self) -> None:
        """Return when the store can take an append now (SQLite writable, Redis
        reachable); raise :class:`StoreError` saying why not. For ``/readyz``."""

    async def close(self) -> None:
        """Release the store; appends after this fail."""


class CredentialStore(Protocol):
    """Registered users: name -> encoded secret record (see :mod:`wslab.chat.rules.kdf`),
    each with its confusable skeleton (:func:`wslab.chat.rules.names.skeleton`), kept so
    that "is there a look-alike?" is one lookup, and whether it was used since it was
    registered (a name never used again expires: :meth:`expire`)."""

    async def lookup(self, user: str) -> str | None:
        """The record of ``user``, or None if the name is free."""

    async def similar(self, skeleton: str) -> str | None:
        """The registered name whose skeleton is ``skeleton``, if any."""

    async def register(self, user: str, skeleton: str, record: str) -> str | None:
        """Register ``user`` unless the name or a name with its skeleton is taken, in
        one atomic step. None if this call registered it, else the name that holds it
        (``user`` itself when the name is taken, another name for a look-alike)."""

    async def used(self, user: str) -> None:
        """``user`` logged in again after registering: it never expires."""

    async def expire(self, age: float) -> int:
        """Forget the names registered more than ``age`` seconds ago (the store's wall
        clock) and never used since; how many were forgotten."""

    async def count(self) -> int:
        """How many names are registered."""

    async def close(self) -> None:
        """Release the store."""


class Limiter(Protocol):
    """The counts behind the node's limits (:class:`wslab.chat.node.Limits`), kept where
    every node of a chat sees them: one user's lines, one name's wrong secrets are
    counted once however many nodes they reach.

    The login throttle's settings (free failures, the cap of the delay) are the
    limiter's own, given when it is made.
    """

    async def allow(self, key: str, rate: float, burst: int) -> bool:
        """Spend one token of the bucket ``key`` (``rate`` per second, bursts of
        ``burst``) if it has one."""

    async def login_attempt(self, charged: Collection[str], held: Collection[str]) -> float:
        """Before a secret is checked, in one atomic step: the seconds before this
        attempt may be made, counting nothing; or 0, with the attempt counted as a
        failure against each ``charged`` key (a name) and as in flight against each
        ``held`` key (a host, a network), which then allows one attempt in flight
        while it has failures (:class:`wslab.chat.rules.ratelimit.LoginThrottle`)."""

    async def login_failed(self, charged: Collection[str], held: Collection[str]) -> float:
        """The attempt's secret was wrong: it lands on the held keys as a failure (the
        charged ones counted it already); the seconds before any of them may try
        again."""

    async def login_release(self, held: Collection[str]) -> None:
        """The attempt ended without a wrong secret: the held keys let it go."""

    async def login_refund(self, charged: Collection[str]) -> None:
        """Take back a charge on keys whose secret was never checked."""

    async def login_succeeded(self, keys: Collection[str]) -> None:
        """The secret was right: the keys' failures are forgotten."""

    async def knows(self, name: str, address: str) -> bool:
        """Whether ``name`` logged in from ``address`` before (recently)."""

    async def remember(self, name: str, address: str) -> None:
        """Note that ``name`` logged in from ``address``."""

    async def close(self) -> None:
        """Release the store."""


class Presence(Protocol):
    """Who is online across the nodes of a shared store (e.g.
    :class:`wslab.chat.stores.redis.RedisPresence`): the node publishes its own users
    through ``local`` from :meth:`start` to :meth:`close`."""

    async def start(self, local: Callable[[], list[str]]) -> None: ...

    def changed(self) -> None:
        """``local()`` changed: publish it soon."""

    async def online(self) -> list[str]: ...

    async def close(self) -> None: ...


def check_retention(retention: object) -> int:
    """``retention`` if it is an integer >= 0 (``ValueError`` otherwise)."""
    if isinstance(retention, bool) or not isinstance(retention, int) or retention < 0:
        raise ValueError(f"retention must be an integer >= 0, not {retention!r}")
    return retention
