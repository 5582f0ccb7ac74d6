"""What a chat line may contain: one rule, applied in one place (:func:`checked_text`).

A line is refused, never silently changed, when it could not be sent or would render as
something it is not:

- a lone UTF-16 surrogate (``"\\ud800"`` in JSON): it cannot be encoded as UTF-8, so no
  recipient could be sent it;
- a control character (C0, DEL, C1) other than the tab, which is only a wide space:
  newlines and carriage returns fake a second line (or a second message) in a log or a
  terminal; a bell or an escape sequence is no text either;
- a bidirectional override, embedding or isolate (U+202A-U+202E, U+2066-U+2069): it
  reverses how the rest of the line, or the next one, is displayed ("Trojan Source");
- a line with no visible character: only spaces and zero-width or filler characters.

Joiners (U+200D) and variation selectors stay allowed inside a line that has visible
characters: emoji sequences need them.
"""

from __future__ import annotations

import re

__all__ = ["checked_text"]

_SURROGATE = re.compile("[\ud800-\udfff]")
_CONTROL = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f]")  # a tab is only a space
_BIDI = re.compile("[\u202a-\u202e\u2066-\u2069]")
# Characters that show nothing: whitespace, zero-width and format characters, fillers.
_VISIBLE = re.compile(
    "[^\\s\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180b-\u180f\u200b-\u200f"
    "\u2028-\u202f\u205f-\u206f\u3164\ufe00-\ufe0f\ufeff\uffa0]"
)


def _named(char: str) -> str:
    return f"U+{ord(char):04X}"


def checked_text(text: str) -> str:
    """Return ``text`` unchanged if a chat line may contain it.

    Raises:
        ValueError: with one pt-BR sentence saying which rule the text breaks.
    """
    if (found := _SURROGATE.search(text)) is not None:
        raise ValueError(
            f"Texto inválido: o caractere {_named(found.group())} (surrogate isolado) não "
            "pode ser codificado em UTF-8."
        )
    if (found := _CONTROL.search(text)) is not None:
        raise ValueError(
            f"Texto inválido: caractere de controle {_named(found.group())}; uma mensagem "
            "é uma linha só, sem quebras de linha nem outros controles."
        )
    if (found := _BIDI.search(text)) is not None:
        raise ValueError(
            f"Texto inválido: o caractere {_named(found.group())} inverte a direção do "
            "texto e faria a linha parecer outra."
        )
    if _VISIBLE.search(text) is None:
        raise ValueError("Mensagem vazia: escreva algum texto visível antes de enviar.")
    return text
