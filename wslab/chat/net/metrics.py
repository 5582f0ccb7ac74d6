"""What a node counts for ``GET /metrics``: prometheus_client collectors in a registry
of their own (never the library's global one, so two nodes in one process, as in the
tests, count apart).

Counters and histograms are bumped where the event happens (one locked float add,
about 0.1 us: deliveries are counted once per write to a group, not per peer);
gauges of state the node already holds (connections, sessions, users online, the
KDF queue, draining) are read only when scraped, through callbacks. ``Metrics(enabled=
False)`` counts nothing, for the benchmark that measures what counting costs.

Labels take values from small fixed sets (:data:`REFUSALS`, the close codes of
:data:`CLOSE_CODES`, else ``"other"``), so a client cannot grow the registry: it holds
at most a few hundred series, a few KiB of text per scrape.
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

__all__ = ["CLOSE_CODES", "CONTENT_TYPE", "REFUSALS", "Metrics"]

CONTENT_TYPE = CONTENT_TYPE_LATEST

# Why a connection or a login was refused (the ``reason`` label).
REFUSALS = (
    "full",  # the node's connection caps, in total
    "per-address",  # the caps of one client address
    "proxy",  # the caps of a trusted proxy's connections
    "host",  # Host or Origin not this chat's (DNS rebinding, cross-site hijacking)
    "draining",  # the node is stopping: no new session
    "proxy-header",  # a PROXY header from an untrusted peer, or a malformed one
    "hello",  # no hello, or a bad one (4000)
    "secret",  # wrong secret (4001)
    "throttled",  # too many wrong secrets (4029)
    "names",  # too many new names (4003)
    "busy",  # logins or replays waiting over their caps (1013)
)
# Close codes counted by value; any other (a client may send any) is "other".
CLOSE_CODES = frozenset(
    {1000, 1001, 1002, 1003, 1006, 1007, 1008, 1009, 1011, 1012, 1013, 4000, 4001, 4003, 4029}
)
# Seconds: a SQLite commit with fsync takes ~1-10 ms, a Redis script ~0.1-1 ms, a
# scrypt hash ~50 ms plus its wait in the queue.
STORE_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1)
KDF_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


class _Nothing:
    """Stands for a collector when counting is off: every call does nothing."""

    def labels(self, *values: str) -> _Nothing:
        return self

    def inc(self, amount: float = 1) -> None:
        pass

    def observe(self, amount: float) -> None:
        pass


class Metrics:
    """The collectors of one node; see the module docstring.

    Attributes bumped by the node and the service: ``stored`` (``.labels(kind)``),
    ``delivered``, ``replayed``, ``shed``, ``store_seconds`` (one append, to its
    confirmation), ``kdf_wait_seconds``, ``store_outages``; and through
    :meth:`refused` and :meth:`closed`, whose labels are bounded here.
    """

    def __init__(self, *, enabled: bool = True) -> None:
        self.enabled = enabled
        self.registry = CollectorRegistry()
        if not enabled:
            nothing = _Nothing()
            self.stored = self.delivered = self.replayed = self.shed = nothing
            self.store_seconds = self.kdf_wait_seconds = self.store_outages = nothing
            self._refusals = self._closes = nothing
            return
        registry = self.registry
        self.stored = Counter(
            "wslab_chat_messages_stored",
            "Mensagens guardadas pelo log deste nó, por tipo.",
            ["kind"],
            registry=registry,
        )
        self.delivered = Counter(
            "wslab_chat_deliveries",
            "Mensagens escritas a sessões (uma por sessão que a recebe), ao vivo.",
            registry=registry,
        )
        self.replayed = Counter(
            "wslab_chat_messages_replayed",
            "Mensagens reenviadas do histórico a sessões que retomaram.",
            registry=registry,
        )
        self.shed = Counter(
            "wslab_chat_slow_clients_shed",
            "Clientes lentos demais para ler, fechados com 1013.",
            registry=registry,
        )
        self._refusals = Counter(
            "wslab_chat_refusals",
            "Conexões ou logins recusados, por motivo.",
            ["reason"],
            registry=registry,
        )
        self._closes = Counter(
            "wslab_chat_closes",
            "Sessões e conexões fechadas, por código de fechamento.",
            ["code"],
            registry=registry,
        )
        self.store_seconds = Histogram(
            "wslab_chat_store_append_seconds",
            "Latência de guardar uma linha: da chamada à confirmação do armazenamento "
            "(SQLite: com o commit em grupo e seu fsync; Redis: o script, com appendfsync).",
            buckets=STORE_BUCKETS,
            registry=registry,
        )
        self.kdf_wait_seconds = Histogram(
            "wslab_chat_kdf_wait_seconds",
            "Espera de um login pelo scrypt: fila mais o cálculo.",
            buckets=KDF_BUCKETS,
            registry=registry,
        )
        self.store_outages = Counter(
            "wslab_chat_store_outages",
            "Vezes que o armazenamento compartilhado (Redis) ficou inalcançável.",
            registry=registry,
        )
        for reason in REFUSALS:  # every series present from the start, at 0
            self._refusals.labels(reason)

    def watch(self, **reads: Callable[[], float]) -> None:
        """Gauges read when scraped: ``connections``, ``sessions``, ``users_online``,
        ``kdf_queue``, ``draining`` (any subset), each a function of no argument."""
        if not self.enabled:
            return
        helps = {
            "connections": "Conexões TCP abertas, com ou sem sessão.",
            "sessions": "Sessões abertas (conexões que passaram do hello).",
            "users_online": "Usuários distintos com ao menos uma sessão neste nó.",
            "kdf_queue": "Logins esperando pelo scrypt (fila mais em cálculo).",
            "draining": "1 enquanto o nó está parando (SIGTERM): /readyz responde 503.",
        }
        for name, read in reads.items():
            gauge = Gauge(f"wslab_chat_{name}", helps[name], registry=self.registry)
            gauge.set_function(read)

    def refused(self, reason: str) -> None:
        """Count one refusal; ``reason`` is one of :data:`REFUSALS`."""
        if reason not in REFUSALS:
            raise ValueError(f"unknown refusal reason {reason!r}")
        self._refusals.labels(reason).inc()

    def closed(self, code: int | None) -> None:
        """Count one close by its code (None: the connection was lost, 1006)."""
        code = 1006 if code is None else code
        self._closes.labels(str(code) if code in CLOSE_CODES else "other").inc()

    def render(self) -> bytes:
        """The Prometheus text exposition of every series (``CONTENT_TYPE``)."""
        return generate_latest(self.registry)
