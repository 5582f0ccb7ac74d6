"""The chat's wire protocol: JSON text frames to node calls, messages and notices to frames.

Pure and sans-I/O, like the hub, so every rule about bad input is a unit test; the
server (:mod:`wslab.chat.net.service`) only moves frames.

Client to server::

    {"type": "hello", "user": "ana", "secret": "...",
     "resume": {"epoch": "...", "offset": 7} or null, "history": 0 to 200 (optional)}
    {"type": "say", "text": "oi", "id": "k3j9..."}   # the line as typed: /msg and /who
                                                   # included; id optional (see below)

Server to client::

    {"type": "welcome", "session": "s3", "user": "ana", "epoch": "...", "recovered": false,
     "nodes": ["ws://10.0.0.1:8765/ws", "ws://10.0.0.2:8765/ws"]}   # nodes: see below
    {"type": "message", "offset": 8, "kind": "public" or "private", "from": "ana",
     "to": null or "joao", "text": "oi", "replayed": false, "id": "k3j9..."}
    {"type": "system", "text": "...", "id": "k3j9..."}
    {"type": "error", "text": "...", "id": "k3j9..."}

**The line's id** (``id``: 1 to 64 letters, digits, ``-`` or ``_``; optional) is the
client's name for one line, so that sending it again cannot store it twice: a line
whose id its sender already used in the last :data:`RESEND_SECONDS` is not stored
again: its first copy is the one delivered, and the line sent again is answered by
that copy's echo or, if that copy was delivered already, by a notice saying so; a
different line with that id is refused with an error
(:class:`wslab.chat.errors.ReusedId`). A client keeps the lines it sent until their
answer comes back carrying their id: the message itself (its echo, or its replay after
a resume: every copy carries the id) or the one notice that answers it (an error,
``/who``'s reply, "already stored"); after a lost connection, or an error saying the
line may still appear, it sends them again with the same ids (the browser client:
:file:`net/static/app.js`, its outbox). Frames carry ``id`` only for a line that had
one. Ids are per sender: two users may use the same id.

``replayed`` is true for messages re-sent because of a resume or a ``history``
request (the newest N messages the user may see, for a session that starts without a
resume). ``nodes`` is present only on a node started with ``--node``: the WebSocket URLs
of every node of the chat, this one first; a client that loses its connection may
resume on any of them with the same resume point, since they share one log (a browser
page may connect to them: the nodes admit each other's origins). Close codes are :class:`wslab.chat.errors.CloseCode`; a frame above :data:`MAX_FRAME_BYTES`
closes with 1009. A node whose store lost messages (Redis came back empty: a new epoch)
closes every session with 1012 (service restart): resume, and the epoch tells what was lost.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, TypeGuard

from ..errors import Refusal, Rejected
from .messages import Kind, Message, Notice, Session

__all__ = [
    "MAX_FRAME_BYTES",
    "MAX_HISTORY",
    "RESEND_SECONDS",
    "BadMessage",
    "BadHello",
    "Hello",
    "Say",
    "encode_item",
    "encode_error",
    "encode_welcome",
    "parse_message",
    "parse_hello",
    "resume_point",
]

MAX_FRAME_BYTES = 16 * 1024
MAX_HISTORY = 200
RESEND_SECONDS = 300  # a line's id keeps it from being stored twice this long, at least
_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


class BadHello(Refusal):
    """The first frame is not a valid hello: the server closes with 4000."""


class BadMessage(Rejected):
    """A message after the hello that cannot be handled (a WebSocket message: one
    JSON object in one text frame): answered with an error message."""


@dataclass(frozen=True, slots=True)
class Hello:
    user: str
    secret: str
    resume: tuple[str, int] | None
    history: int = 0


@dataclass(frozen=True, slots=True)
class Say:
    text: str
    id: str | None = None


def _load_object(frame: str | bytes, error: type[Exception]) -> dict[str, Any]:
    if not isinstance(frame, str):
        raise error("Quadro binário: este protocolo usa apenas quadros de texto com JSON.")
    try:
        data = json.loads(frame)
    except (ValueError, RecursionError):  # RecursionError: nested thousands deep
        raise error("JSON inválido: cada quadro deve ser um objeto JSON.") from None
    if not isinstance(data, dict):
        raise error("JSON inválido: cada quadro deve ser um objeto JSON.")
    return data


def _is_unicode(text: str) -> bool:
    """Whether ``text`` can be encoded as UTF-8: JSON's ``\\ud800`` escape can make a
    lone surrogate, which no frame could carry back out."""
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


_NOT_UNICODE = "Texto inválido: contém um surrogate isolado, que não pode ser codificado em UTF-8."


def parse_hello(frame: str | bytes) -> Hello:
    """Read the first frame of a connection.

    Only the shape is checked here; the name rules and the secret are the router's.

    Raises:
        BadHello: not a text frame, not a JSON object, not ``type: hello``, ``user``
            or ``secret`` not strings (or holding a lone surrogate), ``resume``
            neither null nor ``{"epoch": str, "offset": int >= 0}``, or ``history`` not
            an integer from 0 to :data:`MAX_HISTORY`.
    """
    data = _load_object(frame, BadHello)
    if data.get("type") != "hello":
        raise BadHello('O primeiro quadro deve ser {"type": "hello", ...}.')
    user, secret = data.get("user"), data.get("secret")
    if not isinstance(user, str) or not isinstance(secret, str):
        raise BadHello("hello precisa de user e secret, ambos texto.")
    if not (_is_unicode(user) and _is_unicode(secret)):
        raise BadHello(_NOT_UNICODE)
    history = data.get("history", 0)
    if not _is_count(history) or history > MAX_HISTORY:
        raise BadHello(f"history deve ser um inteiro de 0 a {MAX_HISTORY}.")
    resume = data.get("resume")
    if resume is None:
        return Hello(user, secret, None, history)
    if not isinstance(resume, dict):
        resume = {}
    return Hello(user, secret, resume_point(resume.get("epoch"), resume.get("offset")), history)


def _is_count(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def resume_point(epoch: object, offset: object) -> tuple[str, int]:
    """``(epoch, offset)`` checked: a text epoch and an integer offset >= 0.

    Raises:
        BadHello: (4000) otherwise.
    """
    if not isinstance(epoch, str) or not _is_unicode(epoch) or not _is_count(offset):
        raise BadHello('resume deve ser null ou {"epoch": texto, "offset": inteiro >= 0}.')
    return epoch, offset


def parse_message(frame: str | bytes) -> Say:
    """Read a message sent after the hello.

    Raises:
        BadMessage: binary message, invalid JSON, unknown ``type``, ``text`` not a
            string, or ``id`` present and not 1 to 64 letters, digits, ``-`` or ``_``.
    """
    data = _load_object(frame, BadMessage)
    kind = data.get("type")
    if kind != "say":
        raise BadMessage(f'Tipo de quadro desconhecido: {str(kind)[:40]!r}; use "say".')
    text = data.get("text")
    if not isinstance(text, str):
        raise BadMessage('"say" precisa de "text" com o texto da linha.')
    if not _is_unicode(text):
        raise BadMessage(_NOT_UNICODE)
    said_id = data.get("id")
    if said_id is not None and not (isinstance(said_id, str) and _ID.fullmatch(said_id)):
        raise BadMessage('"id" deve ter de 1 a 64 letras, dígitos, "-" ou "_".')
    return Say(text, said_id)


def _dumps(data: dict[str, object]) -> str:
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"))


def encode_welcome(session: Session, nodes: tuple[str, ...] = ()) -> str:
    """The welcome, with the epoch the session's replay was planned in; ``nodes`` (the
    cluster's WebSocket URLs) only when there are some."""
    welcome = {
        "type": "welcome",
        "session": session.id,
        "user": session.user,
        "epoch": session.epoch,
        "recovered": session.recovered,
    }
    if nodes:
        welcome["nodes"] = list(nodes)
    return _dumps(welcome)


def encode_error(text: str) -> str:
    return _dumps({"type": "error", "text": text})


def encode_item(item: Message | Notice, *, replayed: bool = False) -> str:
    """One frame for a message or a notice; a message's frame is the same for every
    recipient. ``id`` only when the item has one."""
    frame: dict[str, object]
    if isinstance(item, Notice):
        frame = {"type": "error" if item.kind is Kind.ERROR else "system", "text": item.text}
    else:
        frame = {
            "type": "message",
            "offset": item.offset,
            "kind": item.kind.value,
            "from": item.sender,
            "to": item.to,
            "text": item.text,
            "replayed": replayed,
        }
    if item.client_id is not None:
        frame["id"] = item.client_id
    return _dumps(frame)
