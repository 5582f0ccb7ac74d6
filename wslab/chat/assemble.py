"""The one place where a chat's stores are chosen: memory, SQLite or Redis/Valkey.

``python -m wslab.chat serve``, the test and notebook harness
(:class:`wslab.chat.testing.ChatServer`) and the synchronous model
(:class:`wslab.chat.model.ChatModel`) all get their stores here, so a new kind of
store is added in this module and nowhere else.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

from .node import Limits
from .stores import CredentialStore, Limiter, MessageLog, Presence
from .stores.memory import MemoryCredentials, MemoryLog

if TYPE_CHECKING:
    from .stores.redis.client import Where

__all__ = ["Stores", "choose_stores"]


class Stores(NamedTuple):
    """What a node keeps its state in; ``where`` names it for a log line.

    ``presence`` and ``limiter`` are None when the stores serve one node: it knows
    who is online and counts its limits in memory (:class:`wslab.chat.node.ChatNode`).
    """

    log: MessageLog
    credentials: CredentialStore
    presence: Presence | None
    limiter: Limiter | None
    where: str


def choose_stores(
    *,
    db: str | None = None,
    redis: Where | None = None,
    retention: int = 1000,
    limits: Limits | None = None,
    presence_ttl: float = 10.0,
    epoch: str | None = None,
) -> Stores:
    """Memory when neither ``db`` nor ``redis`` is given, else a SQLite file, else a
    Redis (or Valkey) that any number of nodes share, with presence and shared limits:
    ``redis`` is a ``redis://`` URL, or a
    :class:`~wslab.chat.stores.redis.client.SentinelService` (a primary with replicas
    found through Sentinels).

    ``epoch`` names the epoch of a new memory log (the notebooks' fixed one).
    Raises StoreError for a Redis URL that is not one; nothing is opened here (the
    node opens its stores when it starts).
    """
    if db is not None and redis is not None:
        raise ValueError("choose_stores takes db or redis, not both")
    if redis is not None:
        # Imported here: the Redis client weighs ~5 MiB of resident memory that a node
        # on SQLite never needs.
        from .stores.redis import RedisCredentials, RedisLimiter, RedisLog, RedisPresence

        limits = limits or Limits()
        return Stores(
            RedisLog(redis, retention),
            RedisCredentials(redis),
            RedisPresence(redis, ttl=presence_ttl, interval=presence_ttl / 5),
            RedisLimiter(redis, login_free=limits.login_free or 0, login_cap=limits.login_cap),
            f"redis {redis}",
        )
    if db is not None:
        from .stores.sqlite import SqliteStore

        store = SqliteStore(db, retention)
        return Stores(store.log, store.credentials, None, None, f"banco {db}")
    return Stores(MemoryLog(retention, epoch=epoch), MemoryCredentials(), None, None, "memória")
