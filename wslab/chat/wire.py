"""The chat's wire protocol: JSON text frames to router calls, deliveries to frames.

Pure and sans-I/O, like the router, so every rule about bad input is a unit test; the
server (:mod:`wslab.chat.server`) only moves frames.

Client to server::

    {"type": "hello", "user": "ana", "secret": "...", "resume": {"epoch": "...", "offset": 7} or null}
    {"type": "say", "text": "oi"}              # the line as typed: /msg and /who included

Server to client::

    {"type": "welcome", "session": "s3", "user": "ana", "epoch": "...", "recovered": false}
    {"type": "message", "offset": 8, "kind": "public" or "private", "from": "ana",
     "to": null or "joao", "text": "oi", "replayed": false}
    {"type": "system", "text": "..."}
    {"type": "error", "text": "..."}

``replayed`` is true for messages re-sent because of a resume. Close codes are
:class:`ChatCloseCode`; a frame above :data:`MAX_FRAME_BYTES` closes with 1009.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from enum import IntEnum

from .delivery import Delivery, DeliveryKind, Session

__all__ = [
    "MAX_FRAME_BYTES",
    "BadFrame",
    "BadHello",
    "ChatCloseCode",
    "Hello",
    "Say",
    "encode_delivery",
    "encode_error",
    "encode_welcome",
    "parse_frame",
    "parse_hello",
]

MAX_FRAME_BYTES = 16 * 1024


class ChatCloseCode(IntEnum):
    """Close codes of the application range (4000-4999) that this protocol defines."""

    BAD_HELLO = 4000
    BAD_SECRET = 4001


class BadHello(ValueError):
    """The first frame is not a valid hello: the server closes with 4000 (or 4001)."""

    def __init__(self, reason: str, code: ChatCloseCode = ChatCloseCode.BAD_HELLO) -> None:
        super().__init__(reason)
        self.code = code


class BadFrame(ValueError):
    """A frame after the hello that cannot be handled: answered with an error frame."""


@dataclass(frozen=True, slots=True)
class Hello:
    user: str
    secret: str
    resume: tuple[str, int] | None


@dataclass(frozen=True, slots=True)
class Say:
    text: str


def _load_object(frame: str | bytes, error: type[ValueError]) -> dict:
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
            or ``secret`` not strings, or ``resume`` neither null nor
            ``{"epoch": str, "offset": int >= 0}``.
    """
    data = _load_object(frame, BadHello)
    if data.get("type") != "hello":
        raise BadHello('O primeiro quadro deve ser {"type": "hello", ...}.')
    user, secret = data.get("user"), data.get("secret")
    if not isinstance(user, str) or not isinstance(secret, str):
        raise BadHello("hello precisa de user e secret, ambos texto.")
    if not (_is_unicode(user) and _is_unicode(secret)):
        raise BadHello(_NOT_UNICODE)
    resume = data.get("resume")
    if resume is None:
        return Hello(user, secret, None)
    epoch = resume.get("epoch") if isinstance(resume, dict) else None
    offset = resume.get("offset") if isinstance(resume, dict) else None
    if (
        not isinstance(epoch, str)
        or isinstance(offset, bool)
        or not isinstance(offset, int)
        or offset < 0
        or not _is_unicode(epoch)
    ):
        raise BadHello('resume deve ser null ou {"epoch": texto, "offset": inteiro >= 0}.')
    return Hello(user, secret, (epoch, offset))


def parse_frame(frame: str | bytes) -> Say:
    """Read a frame sent after the hello.

    Raises:
        BadFrame: binary frame, invalid JSON, unknown ``type`` or ``text`` not a string.
    """
    data = _load_object(frame, BadFrame)
    kind = data.get("type")
    if kind != "say":
        raise BadFrame(f'Tipo de quadro desconhecido: {str(kind)[:40]!r}; use "say".')
    text = data.get("text")
    if not isinstance(text, str):
        raise BadFrame('"say" precisa de "text" com o texto da linha.')
    if not _is_unicode(text):
        raise BadFrame(_NOT_UNICODE)
    return Say(text)


def _dumps(data: dict) -> str:
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"))


def encode_welcome(session: Session, epoch: str) -> str:
    return _dumps(
        {
            "type": "welcome",
            "session": session.id,
            "user": session.user,
            "epoch": epoch,
            "recovered": session.recovered,
        }
    )


def encode_error(text: str) -> str:
    return _dumps({"type": "error", "text": text})


def encode_delivery(delivery: Delivery, *, replayed: bool = False) -> str:
    """One frame for one delivery; a message's frame is the same for every recipient."""
    if delivery.kind is DeliveryKind.ERROR:
        return encode_error(delivery.text)
    if delivery.kind is DeliveryKind.SYSTEM:
        return _dumps({"type": "system", "text": delivery.text})
    return _dumps(
        {
            "type": "message",
            "offset": delivery.offset,
            "kind": delivery.kind.value,
            "from": delivery.sender,
            "to": delivery.to,
            "text": delivery.text,
            "replayed": replayed,
        }
    )
