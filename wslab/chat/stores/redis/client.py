"""The redis-py client every Redis store uses: bounded waits, one retry, and one pt-BR
sentence for each failure (:func:`failure`).

A store is pointed at one server (a ``redis://`` URL) or at a primary found through
Sentinels (:class:`SentinelService`, redis-py's ``redis.asyncio.sentinel``): then every
new connection asks the Sentinels where the primary is, so the stores follow a failover
by themselves once their connections to the old primary fail (a refused connection, a
timeout, or a ``READONLY`` reply from a primary turned replica). Clients are pooled:
redis-py 8.1's single-connection client was seen to keep reconnecting to the old
primary's address after a failover.

Every call is bounded by socket timeouts (connect 1 s, reply 2 s) and at most one retry on
a lost connection.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable
from typing import Any, NamedTuple

from redis import exceptions as redis_errors
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import (
    MasterNotFoundError,
    Sentinel,
    SentinelConnectionPool,
    SentinelManagedConnection,
)
from redis.backoff import ExponentialWithJitterBackoff

from ...errors import StoreError

__all__ = [
    "CONNECT_TIMEOUT",
    "FAILURES",
    "REPLY_TIMEOUT",
    "SentinelService",
    "Where",
    "answer",
    "connect",
    "failure",
]

CONNECT_TIMEOUT = 1.0
REPLY_TIMEOUT = 2.0

FAILURES = (redis_errors.RedisError, OSError)
"""What a call to Redis may raise when Redis fails (not a bug of ours)."""


class SentinelService(NamedTuple):
    """A primary found through Sentinels: their ``(host, port)`` and the service name
    they know it by (``serve --redis-sentinel HOST:PORT --redis-service NAME``)."""

    sentinels: tuple[tuple[str, int], ...]
    service: str

    def __str__(self) -> str:
        where = ", ".join(f"{host}:{port}" for host, port in self.sentinels)
        return f"serviço {self.service} (Sentinels {where})"


Where = str | SentinelService
"""Where a store's Redis is: a ``redis://`` URL, or a :class:`SentinelService`."""


class _PrimaryConnection(SentinelManagedConnection):
    """A connection to the primary the Sentinels name, that lets go of a server which
    refuses writes for want of replicas (``NOREPLICAS``), as redis-py's lets go of one
    that became a replica (``READONLY``): the next connection asks the Sentinels again.
    A primary paused past a failover (SIGSTOP, a long stall) comes back refusing
    writes until the Sentinels demote it, ~10 s later; without this, a pooled
    connection to it would keep failing all that time."""

    async def read_response(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return await super().read_response(*args, **kwargs)
        except redis_errors.ResponseError as error:
            if not str(error).startswith("NOREPLICAS"):
                raise
            await self.disconnect()
            raise redis_errors.ConnectionError(str(error)) from error


def connect(where: Where, *, reply_timeout: float = REPLY_TIMEOUT, retries: int = 1) -> Redis:
    """A pooled redis-py asyncio client for ``where`` with bounded waits (str replies).

    At most ``retries`` retries, after a short jittered backoff, when a connection is
    lost or times out (a pooled connection may be stale after Redis restarted). A
    client that must know whether a write ran once (a pipeline followed by ``WAIT``)
    takes ``retries=0``: a retried pipeline would run on another connection.

    Raises:
        StoreError: the URL is not a redis:// (or rediss://, unix://) URL.
    """
    options: dict[str, Any] = {
        "decode_responses": True,
        "socket_connect_timeout": CONNECT_TIMEOUT,
        "socket_timeout": reply_timeout,
        "retry": Retry(ExponentialWithJitterBackoff(base=0.05, cap=0.2), retries),
        "max_connections": 256,
        # Names this process's connections (CLIENT LIST; a test's proxy cuts one node).
        "client_name": f"wslab-chat-{os.getpid()}",
    }
    if isinstance(where, SentinelService):
        # redis-py leaves Sentinel.__init__ unannotated.
        sentinel = Sentinel(  # type: ignore[no-untyped-call]
            list(where.sentinels),
            sentinel_kwargs={
                "socket_connect_timeout": CONNECT_TIMEOUT,
                "socket_timeout": CONNECT_TIMEOUT,
                # One try each: the next Sentinel is the retry (redis-py's default
                # retries three times with backoffs of seconds).
                "retry": Retry(ExponentialWithJitterBackoff(base=0.05, cap=0.2), 0),
            },
        )
        primary: Redis = sentinel.master_for(
            where.service, connection_class=_PrimaryConnection, **options
        )
        return primary
    try:
        return Redis.from_url(where, **options)
    except (ValueError, TypeError) as error:
        raise StoreError(
            f"Endereço do Redis inválido ({where!r}): use redis://HOST:PORTA/BANCO."
        ) from error


def _describe(error: BaseException) -> str:
    if isinstance(error, MasterNotFoundError):
        return "não tem primário: nenhum Sentinel indica um (failover em curso, ou Sentinels sem quórum)"
    if "NOREPLICAS" in str(error):
        return "recusou a escrita: está sem réplica em dia"
    if isinstance(error, redis_errors.ReadOnlyError):
        return "deixou de ser o primário (virou réplica)"
    if isinstance(error, redis_errors.BusyLoadingError):
        return "ainda carregando os dados do disco"
    if isinstance(error, redis_errors.TimeoutError):
        return "não respondeu a tempo"
    if isinstance(error, (redis_errors.ConnectionError, OSError)):
        return "não aceitou a conexão ou a perdeu"
    return f"respondeu com erro ({str(error)[:120]})"


def _address(client: Redis) -> str:
    pool = client.connection_pool
    if isinstance(pool, SentinelConnectionPool):
        return f"do serviço {pool.service_name} (o primário que os Sentinels indicam)"
    kwargs = pool.connection_kwargs
    if "path" in kwargs:
        return f"em {kwargs['path']}"
    return f"em {kwargs.get('host', '?')}:{kwargs.get('port', '?')}"


def failure(client: Redis, error: BaseException, outcome: str) -> StoreError:
    """One pt-BR sentence: which Redis, what went wrong, what it means for the caller."""
    return StoreError(f"O Redis {_address(client)} {_describe(error)}: {outcome}.")


async def answer(client: Redis, call: Awaitable[Any], outcome: str) -> Any:
    """The reply to ``call`` (a command of ``client``, as redis-py types it: Any).

    Raises:
        StoreError: Redis failed (:func:`failure`, ending in ``outcome``).
    """
    try:
        return await call
    except FAILURES as error:
        raise failure(client, error, outcome) from error
