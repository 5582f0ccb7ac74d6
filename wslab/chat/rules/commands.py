"""Parse one typed line into a command: public text, ``/msg``, ``/who``.

Pure and small, so the rules about bad input can be tested line by line. Every
rejection is a :class:`CommandError` whose message is a plain pt-BR sentence meant for
the user who typed the line.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import Rejected
from .names import normalize_name
from .text import checked_text

__all__ = [
    "MAX_TEXT_LENGTH",
    "CommandError",
    "PrivateText",
    "PublicText",
    "WhoQuery",
    "parse_line",
]

MAX_TEXT_LENGTH = 2000

_MSG_USAGE = "Uso: /msg <usuário> <texto>"


class CommandError(Rejected):
    """A line that cannot be sent; ``str(error)`` is the sentence shown to the user."""


@dataclass(frozen=True, slots=True)
class PublicText:
    """Plain text, for everyone online."""

    text: str


@dataclass(frozen=True, slots=True)
class PrivateText:
    """``/msg <to> <text>``: for the recipient and the sender only."""

    to: str
    text: str


@dataclass(frozen=True, slots=True)
class WhoQuery:
    """``/who``: list who is online, to the asking session only."""


Command = PublicText | PrivateText | WhoQuery


def _checked_text(text: str) -> str:
    """The text of a public or private message: :func:`checked_text`, and not too long."""
    try:
        checked_text(text)
    except ValueError as error:
        raise CommandError(str(error)) from None
    if len(text) > MAX_TEXT_LENGTH:
        raise CommandError(
            f"Mensagem longa demais: {len(text)} caracteres; o limite é {MAX_TEXT_LENGTH}."
        )
    return text


def _first_word(text: str) -> tuple[str, str]:
    """Split off the first word at any whitespace (a tab too); the rest keeps its spacing."""
    parts = text.split(maxsplit=1)
    return (parts[0], parts[1]) if len(parts) == 2 else (text.strip(), "")


def parse_line(line: str) -> Command:
    """Parse one line typed by a user.

    Surrounding whitespace is dropped; a line starting with ``/`` is a command
    (command names are case-insensitive). The text of a message must pass
    :func:`wslab.chat.rules.text.checked_text` (no controls, bidi overrides, lone surrogates or
    invisible-only text) and is limited to ``MAX_TEXT_LENGTH`` characters.

    Raises:
        TypeError: if ``line`` is not a string (a programming error, not user input).
        CommandError: blank or invisible line, a character :mod:`wslab.chat.rules.text`
            refuses, ``/msg`` without user or text, a malformed user
            name, an unknown command, ``/who`` with arguments, or text too long.
    """
    if not isinstance(line, str):
        raise TypeError(f"A linha enviada deve ser str, não {type(line).__name__}.")
    stripped = line.strip()
    if not stripped:
        raise CommandError("Mensagem vazia: escreva algum texto antes de enviar.")
    if not stripped.startswith("/"):
        return PublicText(_checked_text(stripped))
    name, rest = _first_word(stripped)
    command = name.lower()
    if command == "/msg":
        target, text = _first_word(rest)
        if not target:
            raise CommandError(f"{_MSG_USAGE}: falta o nome do destinatário.")
        try:
            to = normalize_name(target)
        except ValueError:
            raise CommandError(
                f"Não existe usuário chamado '{target[:40]}': nomes têm de 1 a 32 "
                "caracteres entre a-z, 0-9, '_', '.' e '-'."
            ) from None
        text = text.strip()
        if not text:
            raise CommandError(f"{_MSG_USAGE}: falta o texto da mensagem para '{to}'.")
        return PrivateText(to, _checked_text(text))
    if command == "/who":
        if rest:
            raise CommandError("O comando /who não recebe argumentos: envie apenas /who.")
        return WhoQuery()
    raise CommandError(
        f"Comando desconhecido: {name[:40]}. Os comandos são /msg <usuário> <texto> e /who."
    )
