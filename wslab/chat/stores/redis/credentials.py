"""Registered users in one Redis hash; ``HSETNX``: the first node wins a race.

Key: ``{prefix}users``, a hash of name -> secret record (:mod:`wslab.chat.rules.kdf`).
With replicas (a :class:`~.client.SentinelService`), a registration counts only once a
replica has it (:mod:`.replicas`), so a failover cannot hand a taken name to someone
else.
"""

from __future__ import annotations

from ...errors import StoreError
from .client import FAILURES, SentinelService, Where, connect, failure
from .replicas import Replicas

__all__ = ["RedisCredentials"]


class RedisCredentials:
    """Registered users in one Redis hash; ``HSETNX``: the first node wins a race."""

    def __init__(self, where: Where, *, prefix: str = "wslab:chat:") -> None:
        self._client = connect(where)
        self._replicas = Replicas(required=isinstance(where, SentinelService))
        # A confirmed write must run once, on the connection its WAIT asks about.
        self._writer = connect(where, retries=0) if self._replicas.required else self._client
        self._users = f"{prefix}users"

    async def lookup(self, user: str) -> str | None:
        return await self._call(self._client.hget(self._users, user))

    async def register(self, user: str, record: str) -> bool:
        try:
            won, confirmed = await self._replicas.confirm(
                self._writer, ("HSETNX", self._users, user, record)
            )
        except FAILURES as error:
            raise failure(self._writer, error, "não consegui registrar o nome") from error
        if not confirmed:
            raise StoreError(
                "O Valkey não confirmou o registro do nome numa réplica a tempo: entre de "
                "novo em instantes."
            )
        return bool(won)

    async def count(self) -> int:
        return await self._call(self._client.hlen(self._users))

    async def close(self) -> None:
        await self._client.aclose()
        if self._writer is not self._client:
            await self._writer.aclose()

    async def _call(self, call):
        try:
            return await call
        except FAILURES as error:
            raise failure(self._client, error, "não consegui consultar os usuários") from error
