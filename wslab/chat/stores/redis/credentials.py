"""Registered users in one Redis hash; ``HSETNX``: the first node wins a race.

Key: ``{prefix}users``, a hash of name -> secret record (:mod:`wslab.chat.rules.kdf`).
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any

from .client import answer, connect

__all__ = ["RedisCredentials"]


class RedisCredentials:
    """Registered users in one Redis hash; ``HSETNX``: the first node wins a race."""

    def __init__(self, url: str, *, prefix: str = "wslab:chat:") -> None:
        self._client = connect(url)
        self._users = f"{prefix}users"

    async def lookup(self, user: str) -> str | None:
        record: str | None = await self._call(self._client.hget(self._users, user))
        return record

    async def register(self, user: str, record: str) -> bool:
        return bool(await self._call(self._client.hsetnx(self._users, user, record)))

    async def count(self) -> int:
        return int(await self._call(self._client.hlen(self._users)))

    async def close(self) -> None:
        await self._client.aclose()

    async def _call(self, call: Awaitable[Any]) -> Any:
        return await answer(self._client, call, "não consegui consultar os usuários")
