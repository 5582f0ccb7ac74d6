"""What the chat keeps and hands out: messages, notices, outbound items, sessions.

- a :class:`Message` is a line stored in the log, public or private, at its offset; it
  is frozen so that one object can go to many sessions at once, and
  :meth:`Message.visible_to` is the one statement of who may ever see it;
- a :class:`Notice` is a text from the server for some sessions (system or error): it
  has no offset, is never stored and never replayed;
- an :class:`Outbound` says which sessions (by the handle the adapter gave each) get a
  message or a notice and whether it is a replay, so an adapter encodes it once and
  writes the same bytes to every recipient;
- :class:`LogState` is what one read of the log saw; :class:`Session` is what a session
  learns when it opens.
"""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Collection
from dataclasses import dataclass, replace
from typing import Generic, NamedTuple, TypeVar

__all__ = [
    "H",
    "Kind",
    "LogState",
    "Message",
    "Notice",
    "Outbound",
    "Session",
    "answering",
    "fingerprint",
]

# A session's handle: what the adapter attached to it (the service's client, the
# model's queue). The rules only hold it and hand it back.
H = TypeVar("H")


class Kind(enum.StrEnum):
    """Kind of a message (public, private) or a notice (system, error); a ``str``
    subclass, so it compares and JSON-encodes as text."""

    PUBLIC = "public"
    PRIVATE = "private"
    SYSTEM = "system"
    ERROR = "error"


@dataclass(frozen=True, slots=True)
class Message:
    """A line kept in the log at ``offset`` (1, 2, 3, ...); ``to`` only on a private one;
    ``client_id`` is the id its sender's client gave the line, if any (kept with it, so
    the echo and every replay tell the client which of its lines this is)."""

    kind: Kind
    offset: int
    sender: str
    to: str | None
    text: str
    client_id: str | None = None

    def visible_to(self, user: str) -> bool:
        """Whether ``user`` may ever receive this message: a public one, everyone; a
        private one, its sender and its recipient.

        This is the visibility rule; the SQL of :mod:`wslab.chat.stores.sqlite` and the
        Lua of :mod:`wslab.chat.stores.redis.log` repeat it for speed, and the stores'
        contract test checks them against it.
        """
        return self.kind is Kind.PUBLIC or user == self.sender or user == self.to


@dataclass(frozen=True, slots=True)
class Notice:
    """A text for some sessions from the server (``kind`` system or error); never kept.
    ``client_id``: the id of the line this notice answers (an error, ``/who``'s reply)."""

    kind: Kind
    text: str
    client_id: str | None = None


@dataclass(frozen=True, slots=True)
class Outbound(Generic[H]):
    """One message or notice for a group of sessions, in the order the hub decided.

    ``handles`` are the objects the adapter attached to those sessions when it opened
    them (a client, a queue): the hub never looks inside them. ``replayed`` is True
    for messages re-sent because of a resume or a history request.
    """

    item: Message | Notice
    handles: Collection[H]
    replayed: bool = False


class LogState(NamedTuple):
    """What a read of the log saw: the epoch, the newest offset (0 before the first
    message) and the oldest offset still kept (``newest + 1`` when none is kept)."""

    epoch: str
    newest: int
    oldest: int


@dataclass(frozen=True, slots=True)
class Session:
    """What a session learns when it opens.

    ``epoch`` is the epoch its replay was planned in (the welcome carries it);
    ``recovered`` is True only when it resumed in that epoch and nothing after its
    offset had left the history, i.e. it provably missed nothing.
    """

    id: str
    user: str
    recovered: bool
    epoch: str


def answering(replies: list[Outbound[H]], client_id: str | None) -> list[Outbound[H]]:
    """``replies`` to a line, each notice marked with the line's id (the client learns
    which of its lines was refused, or answered)."""
    if client_id is None:
        return replies
    return [
        Outbound(replace(r.item, client_id=client_id), r.handles, r.replayed)
        if isinstance(r.item, Notice)
        else r
        for r in replies
    ]


def fingerprint(kind: str, to: str | None, text: str) -> str:
    """A short digest of what a line says (kind, recipient, text), kept with its id:
    a line sent again must say the same, or its id was reused for another line."""
    said = f"{kind}\0{to or ''}\0{text}".encode()
    return hashlib.blake2b(said, digest_size=8).hexdigest()
