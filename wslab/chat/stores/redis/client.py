"""The redis-py client every Redis store uses: bounded waits, one retry, and one pt-BR
sentence for each failure (:func:`failure`).

Every call is bounded by socket timeouts (connect 1 s, reply 2 s) and at most one retry on
a lost connection.
"""

from __future__ import annotations

from redis import exceptions as redis_errors
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialWithJitterBackoff

from ...errors import StoreError

__all__ = ["CONNECT_TIMEOUT", "FAILURES", "REPLY_TIMEOUT", "connect", "failure"]

CONNECT_TIMEOUT = 1.0
REPLY_TIMEOUT = 2.0

FAILURES = (redis_errors.RedisError, OSError)
"""What a call to Redis may raise when Redis fails (not a bug of ours)."""


def connect(
    url: str, *, reply_timeout: float = REPLY_TIMEOUT, single: bool = False, retries: int = 1
) -> Redis:
    """A redis-py asyncio client for ``url`` with bounded waits (str replies).

    At most ``retries`` retries, after a short jittered backoff, when a connection is
    lost or times out (a pooled connection may be stale after Redis restarted).

    Raises:
        StoreError: the URL is not a redis:// (or rediss://, unix://) URL.
    """
    try:
        return Redis.from_url(
            url,
            decode_responses=True,
            socket_connect_timeout=CONNECT_TIMEOUT,
            socket_timeout=reply_timeout,
            retry=Retry(ExponentialWithJitterBackoff(base=0.05, cap=0.2), retries),
            max_connections=256,
            single_connection_client=single,
        )
    except (ValueError, TypeError) as error:
        raise StoreError(
            f"Endereço do Redis inválido ({url!r}): use redis://HOST:PORTA/BANCO."
        ) from error


def _describe(error: BaseException) -> str:
    if isinstance(error, redis_errors.BusyLoadingError):
        return "ainda carregando os dados do disco"
    if isinstance(error, redis_errors.TimeoutError):
        return "não respondeu a tempo"
    if isinstance(error, (redis_errors.ConnectionError, OSError)):
        return "não aceitou a conexão ou a perdeu"
    return f"respondeu com erro ({str(error)[:120]})"


def _address(client: Redis) -> str:
    kwargs = client.connection_pool.connection_kwargs
    if "path" in kwargs:
        return kwargs["path"]
    return f"{kwargs.get('host', '?')}:{kwargs.get('port', '?')}"


def failure(client: Redis, error: BaseException, outcome: str) -> StoreError:
    """One pt-BR sentence: which Redis, what went wrong, what it means for the caller."""
    return StoreError(f"O Redis em {_address(client)} {_describe(error)}: {outcome}.")
