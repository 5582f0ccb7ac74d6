"""Parte 3's chat: public and private messages, many sessions per user, drop and resume
with offsets and an epoch, on one node or several.

Glossary (one name per thing, in Python, JavaScript, on the wire and in the notebooks):

- **user**: a registered name (``ana``), case-insensitive, with a secret;
- **session**: one open connection of a user (a tab, a phone); a user may have many;
- **node**: one server process; several nodes sharing a Redis form one chat;
- **line**: what a user types in a session and *submits* (a ``say`` frame on the wire):
  a message, ``/msg joao oi`` or ``/who``;
- **message**: a line kept in the log, public or private, at its **offset** (1, 2, 3,
  ...: one sequence for the whole chat) within an **epoch** (the identity of that
  sequence: it changes only when the history is lost);
- **notice**: a text from the server for some sessions (system or error): no offset,
  never kept, never replayed;
- **resume point**: the (epoch, offset) of the last message a session received; a new
  session that gives it gets what it missed, and ``recovered`` says whether provably all.

Layers (imports run one way: net → node → rules ← stores):

- :mod:`.rules` (pure): who sees what, which sessions receive a message, what a resume
  gets, the wire format, names, text, rate buckets;
- :mod:`.stores`: the log, credentials, presence and the limits' counts, in memory,
  SQLite or Redis; :mod:`.assemble` chooses them;
- :mod:`.node`: :class:`~.node.ChatNode` awaits the stores and applies the rules with
  the limits; it owns no sockets;
- :mod:`.net`: the websockets server, which writes what the node says to send;
- :mod:`.model`: :class:`ChatModel`, the whole chat as one synchronous object (notebook
  04, the simulation); :mod:`.testing`: real servers for tests and notebooks;
- :mod:`.cli`: ``python -m wslab.chat serve``; :mod:`.errors`: the error tree.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .errors import AuthError, Refusal
    from .model.chat import ChatModel
    from .rules.messages import Kind, Message, Notice, Outbound, Session

__all__ = ["AuthError", "ChatModel", "Kind", "Message", "Notice", "Outbound", "Refusal", "Session"]

# Where each public name lives. Imported on first use (PEP 562), so that importing one
# layer (``wslab.chat.rules.hub``) does not import the others through this package.
_HOMES = {
    "AuthError": ".errors",
    "Refusal": ".errors",
    "ChatModel": ".model.chat",
    "Kind": ".rules.messages",
    "Message": ".rules.messages",
    "Notice": ".rules.messages",
    "Outbound": ".rules.messages",
    "Session": ".rules.messages",
}


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_HOMES[name], __name__), name)
