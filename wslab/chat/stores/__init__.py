"""Where the chat keeps what must outlive a connection: the message log and the
registered users, behind two small interfaces.

- :class:`MessageLog` assigns offsets, keeps the newest ``retention`` messages and
  hands every committed message, once and in offset order, to the callback given to
  :meth:`MessageLog.start`. Routing (who sees what) is not its business: the hub
  (:mod:`wslab.chat.hub`) decides that.
- :class:`CredentialStore` keeps one encoded secret record per user name, registered
  once: the first writer of a name wins.

Implementations: :mod:`.memory` (notebooks, simulation, property tests), :mod:`.sqlite`
(one node, the embedded default). One contract suite (tests/test_chat_stores.py) runs
against every implementation. Methods are coroutines so that a store may do I/O; the
in-memory ones never suspend.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple, Protocol

from ..delivery import Delivery, DeliveryKind

__all__ = ["CredentialStore", "Deliver", "LogState", "MessageLog"]

Deliver = Callable[[Sequence[Delivery]], None]
"""Receives committed messages, oldest first, on the event loop that started the log."""


class LogState(NamedTuple):
    """What a read saw: the epoch, the newest offset (0 before the first message) and
    the oldest offset still kept (``newest + 1`` when none is kept)."""

    epoch: str
    newest: int
    oldest: int


class MessageLog(Protocol):
    """The shared history: offsets from one source, an epoch, bounded retention."""

    @property
    def retention(self) -> int:
        """How many of the newest messages are kept for resumes and history."""

    @property
    def state(self) -> LogState:
        """The state as of the newest message handed to the callback."""

    async def start(self, deliver: Deliver) -> LogState:
        """Begin handing committed messages to ``deliver``; returns the state then.

        Raises:
            StoreError: the store cannot be opened (one pt-BR sentence says why).
        """

    async def append(self, kind: DeliveryKind, sender: str, to: str | None, text: str) -> int:
        """Store one message and return its offset once it is committed.

        ``deliver`` gets the message too, in offset order (before or after this
        returns, depending on the store). Raises StoreError when nothing was stored.
        """

    async def read_after(self, offset: int) -> tuple[LogState, list[Delivery]]:
        """Every kept message with an offset above ``offset``, oldest first."""

    async def recent(self, user: str, count: int) -> tuple[LogState, list[Delivery]]:
        """The newest ``count`` kept messages ``user`` may see, oldest first."""

    async def close(self) -> None:
        """Release the store; appends after this fail."""


class CredentialStore(Protocol):
    """Registered users: name -> encoded secret record (see :mod:`wslab.chat.kdf`)."""

    async def lookup(self, user: str) -> str | None:
        """The record of ``user``, or None if the name is free."""

    async def register(self, user: str, record: str) -> bool:
        """Register ``user`` unless the name is taken; True if this call registered it."""

    async def count(self) -> int:
        """How many names are registered."""

    async def close(self) -> None:
        """Release the store."""
