"""User names: case-insensitive, stored lower-case, a small ASCII alphabet."""

from __future__ import annotations

import re

__all__ = ["MAX_NAME_LENGTH", "normalize_name"]

MAX_NAME_LENGTH = 32
# Checked on the name as typed (ASCII only), before lower-casing: str.lower() maps some
# non-ASCII letters (the Kelvin sign "K") to ASCII ones and would let look-alikes in.
_NAME = re.compile(rf"[A-Za-z0-9_.\-]{{1,{MAX_NAME_LENGTH}}}")


def normalize_name(name: object) -> str:
    """Return ``name`` lower-cased.

    Raises:
        ValueError: if ``name`` is not a string of 1 to 32 characters among
            a-z, A-Z, 0-9, ``_``, ``.`` and ``-``.
    """
    if not isinstance(name, str) or _NAME.fullmatch(name) is None:
        raise ValueError(
            f"Nome de usuário inválido: {name!r}. Use de 1 a {MAX_NAME_LENGTH} "
            "caracteres entre letras a-z, dígitos 0-9, '_', '.' e '-'."
        )
    return name.lower()
