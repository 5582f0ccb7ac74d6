"""Secrets stored as salted scrypt digests (``hashlib.scrypt``, standard library).

A record is one string, ``scrypt$N$r$p$salt$digest`` (salt and digest in base64), so
any store keeps it as text and each record verifies with the cost it was made with.

Default cost, :data:`SCRYPT`: N=2**14, r=8, p=1, Django's default for its scrypt
hasher and the scrypt paper's parameters for interactive logins: 16 MiB of memory per
hash, about 50-80 ms of one core on this project's machine
(``python -m benchmarks.chat_login`` measures it), i.e. roughly 15-20 guesses per
second per core for someone who stole the database. OWASP asks for N=2**17 (128 MiB);
the cost is a setting (``--kdf-n``). Notebooks and tests lower it explicitly with
:data:`CHEAP`; the server's default never does.

Hashing takes tens of milliseconds of CPU, so callers run it off the event loop (the
node uses a thread pool; ``hashlib.scrypt`` releases the GIL while it works).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from dataclasses import dataclass

__all__ = ["CHEAP", "SCRYPT", "Scrypt"]


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


@dataclass(frozen=True, slots=True)
class Scrypt:
    """scrypt's cost parameters; :meth:`hash` makes a record, :meth:`verify` checks one."""

    n: int = 2**14
    r: int = 8
    p: int = 1

    def __post_init__(self) -> None:
        if self.n < 2 or self.n & (self.n - 1) or self.r < 1 or self.p < 1:
            raise ValueError(f"scrypt needs n a power of 2 >= 2, r >= 1, p >= 1: {self}")

    @property
    def memory(self) -> int:
        """Bytes one hash needs (128 * r * N)."""
        return 128 * self.r * self.n

    def hash(self, secret: str) -> str:
        """A new record for ``secret``, with a random 16-byte salt."""
        salt = os.urandom(16)
        digest = self._digest(secret.encode(), salt)
        return f"scrypt${self.n}${self.r}${self.p}${_b64(salt)}${_b64(digest)}"

    def _digest(self, secret: bytes, salt: bytes) -> bytes:
        return hashlib.scrypt(
            secret,
            salt=salt,
            n=self.n,
            r=self.r,
            p=self.p,
            maxmem=self.memory + (1 << 20),
            dklen=32,
        )

    @staticmethod
    def verify(secret: str, record: str) -> bool:
        """Whether ``secret`` matches ``record``, using the record's own cost.

        Raises:
            ValueError: if ``record`` is not a scrypt record.
        """
        scheme, n, r, p, salt, digest = record.split("$")
        if scheme != "scrypt":
            raise ValueError(f"not a scrypt record: {scheme!r}")
        cost = Scrypt(int(n), int(r), int(p))
        got = cost._digest(secret.encode(), base64.b64decode(salt))
        return hmac.compare_digest(got, base64.b64decode(digest))


SCRYPT = Scrypt()
CHEAP = Scrypt(n=2, r=1, p=1)  # for notebooks and tests that open thousands of sessions
