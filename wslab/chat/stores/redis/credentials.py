"""Registered users in one Redis hash; ``HSETNX``: the first node wins a race.

Key: ``{prefix}users``, a hash of name -> secret record (:mod:`wslab.chat.rules.kdf`).
"""

from __future__ import annotations

from .client import FAILURES, connect, failure

__all__ = ["RedisCredentials"]


class RedisCredentials:
    """Registered users in one Redis hash; ``HSETNX``: the first node wins a race."""

    def __init__(self, url: str, *, prefix: str = "wslab:chat:") -> None:
        self._client = connect(url)
        self._users = f"{prefix}users"

    async def lookup(self, user: str) -> str | None:
        return await self._call(self._client.hget(self._users, user))

    async def register(self, user: str, record: str) -> bool:
        return bool(await self._call(self._client.hsetnx(self._users, user, record)))

    async def count(self) -> int:
        return await self._call(self._client.hlen(self._users))

    async def close(self) -> None:
        await self._client.aclose()

    async def _call(self, call):
        try:
            return await call
        except FAILURES as error:
            raise failure(self._client, error, "não consegui consultar os usuários") from error
