"""Secrets of registered users, stored only as salted PBKDF2 digests.

Model choice: the default iteration count is deliberately modest (1,000 rounds of
PBKDF2-HMAC-SHA256; notebook 04 measures what a connect costs with it) because the
tests and the notebook open thousands of sessions. A production server would use hundreds of thousands of rounds
(or scrypt/argon2) and would keep the store outside the process.
"""
from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

__all__ = ["AuthError", "Credentials", "DEFAULT_KDF_ITERATIONS"]

DEFAULT_KDF_ITERATIONS = 1_000


class AuthError(Exception):
    """Raised when a registered name is used with a different secret."""


@dataclass(frozen=True, slots=True)
class _Digest:
    salt: bytes
    value: bytes


class Credentials:
    """Registry of user name -> salted digest of the secret.

    The salt is derived from a per-router random ``namespace`` (the router's epoch)
    and the user name, so each user of each router gets its own salt without the
    store drawing randomness of its own; that keeps the router reproducible when the
    epoch is injected.
    """

    def __init__(self, namespace: str, iterations: int = DEFAULT_KDF_ITERATIONS) -> None:
        if isinstance(iterations, bool) or not isinstance(iterations, int) or iterations < 1:
            raise ValueError(
                f"kdf_iterations deve ser um inteiro >= 1, não {iterations!r}."
            )
        self._namespace = namespace.encode()
        self._iterations = iterations
        self._digests: dict[str, _Digest] = {}

    def __contains__(self, user: str) -> bool:
        return user in self._digests

    def _digest(self, secret: str, salt: bytes) -> bytes:
        return hashlib.pbkdf2_hmac("sha256", secret.encode(), salt, self._iterations)

    def authenticate(self, user: str, secret: str) -> bool:
        """Register ``user`` on first use, else check ``secret``.

        Returns True when this call registered the user. ``user`` must already be
        normalized.

        Raises:
            ValueError: if ``secret`` is not a non-empty string.
            AuthError: if ``user`` is registered with another secret.
        """
        if not isinstance(secret, str) or secret == "":
            raise ValueError("O segredo (senha) deve ser um texto não vazio.")
        known = self._digests.get(user)
        if known is None:
            salt = hashlib.sha256(self._namespace + b"\0" + user.encode()).digest()[:16]
            self._digests[user] = _Digest(salt, self._digest(secret, salt))
            return True
        if not hmac.compare_digest(known.value, self._digest(secret, known.salt)):
            raise AuthError(
                f"Segredo incorreto para o usuário '{user}': esse nome já está "
                "registrado com outro segredo. Nenhuma sessão foi aberta."
            )
        return False
