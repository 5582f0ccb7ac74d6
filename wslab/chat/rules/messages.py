"""What the hub hands out: immutable deliveries, outbound items and session handles.

A :class:`Delivery` is frozen so that one object can go to many sessions at once; an
:class:`Outbound` says which sessions get it and whether it is a replay, so an adapter
serializes it once and writes the same bytes to every recipient.
"""

from __future__ import annotations

import enum
from collections.abc import Collection
from dataclasses import dataclass

__all__ = ["Delivery", "DeliveryKind", "Outbound", "Session"]


class DeliveryKind(enum.StrEnum):
    """Kind of a delivery; a ``str`` subclass, so it compares and JSON-encodes as text."""

    PUBLIC = "public"
    PRIVATE = "private"
    SYSTEM = "system"
    ERROR = "error"


@dataclass(frozen=True, slots=True)
class Delivery:
    """One item queued for a session.

    ``offset`` is the message's position in the shared history (1, 2, 3, ...) for
    public and private messages, and ``None`` for system and error notices, which are
    never kept. ``sender`` is ``None`` for notices; ``to`` is set only on private
    messages.
    """

    kind: DeliveryKind
    offset: int | None
    sender: str | None
    to: str | None
    text: str

    @property
    def kept(self) -> bool:
        """True for messages kept in history (public and private)."""
        return self.offset is not None

    def visible_to(self, user: str) -> bool:
        """Whether ``user`` may ever receive this message.

        Public messages are visible to everyone; a private one only to its sender and
        its recipient. Notices are addressed to one session and are never replayed.
        """
        if self.kind is DeliveryKind.PUBLIC:
            return True
        if self.kind is DeliveryKind.PRIVATE:
            return user == self.sender or user == self.to
        return False


@dataclass(frozen=True, slots=True)
class Session:
    """Handle returned by :meth:`ChatRouter.connect`.

    ``recovered`` is True only when the session resumed in the same epoch and nothing
    after its offset had left the history, i.e. it provably missed nothing.
    """

    id: str
    user: str
    recovered: bool


@dataclass(frozen=True, slots=True)
class Outbound:
    """One delivery for a group of sessions, in the order the hub decided.

    ``peers`` are the objects the adapter attached to those sessions when it opened
    them (a connection, a queue): the hub never looks inside them. ``replayed`` is
    True for messages re-sent because of a resume or a history request.
    """

    delivery: Delivery
    peers: Collection[object]
    replayed: bool = False
