"""What a load balancer and a monitor ask a node: ``/healthz``, ``/readyz``, ``/metrics``.

- ``GET /healthz``: 200 while the process serves HTTP at all (a liveness probe).
- ``GET /readyz``: 200 only when the store answers (SQLite writable, Redis reachable)
  and the node is not draining; otherwise 503 with the reason, in one pt-BR line. The
  store is not asked per request: :meth:`Readiness.watch` asks it every ``interval``
  (bounded by ``timeout``) and the answer is read from there, so a balancer probing
  every 500 ms, or a flood of probes, costs a dictionary read each.
- ``GET /metrics``: the Prometheus text (:mod:`.metrics`), only to clients whose
  address (the client's, behind a trusted proxy: never the proxy's) is inside the
  allowed networks (``serve --metrics-allow``, loopback by default); 403 to others.

None of them is logged per request, and none is counted against a client's limits.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from http import HTTPStatus

from websockets.datastructures import Headers
from websockets.http11 import Response

from ..errors import StoreError
from .metrics import CONTENT_TYPE, Metrics
from .proxy import Network, inside

__all__ = ["LOOPBACK", "PROBE_PATHS", "Readiness", "probe_response"]

PROBE_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
LOOPBACK = ("127.0.0.0/8", "::1/128")
DRAINING = "O nó está parando (SIGTERM): não aceita sessões novas."
UNCHECKED = "O armazenamento ainda não foi verificado."


class Readiness:
    """Whether this node should get new sessions, and if not, why (pt-BR)."""

    def __init__(self) -> None:
        self.draining = False
        self.store_problem: str | None = UNCHECKED

    @property
    def reason(self) -> str | None:
        """Why the node is not ready, or None when it is."""
        return DRAINING if self.draining else self.store_problem

    async def watch(
        self,
        check: Callable[[], Awaitable[None]],
        *,
        interval: float = 1.0,
        timeout: float = 1.0,
    ) -> None:
        """Run ``check`` (raises :class:`StoreError` when the store cannot be used)
        every ``interval`` seconds, at most ``timeout`` each, until cancelled."""
        while True:
            try:
                async with asyncio.timeout(timeout):
                    await check()
            except StoreError as error:
                self.store_problem = str(error)
            except TimeoutError:
                self.store_problem = f"O armazenamento não respondeu em {timeout:g} s."
            else:
                self.store_problem = None
            await asyncio.sleep(interval)

    def start(self, check: Callable[[], Awaitable[None]], **options: float) -> asyncio.Task:
        return asyncio.get_running_loop().create_task(self.watch(check, **options))

    @staticmethod
    async def stop(task: asyncio.Task | None) -> None:
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


def _text(status: HTTPStatus, text: str) -> Response:
    body = (text + "\n").encode()
    headers = Headers(
        [
            ("Content-Type", "text/plain; charset=utf-8"),
            ("Content-Length", str(len(body))),
            ("Cache-Control", "no-store"),
        ]
    )
    return Response(status.value, status.phrase, headers, body)


def probe_response(
    path: str,
    readiness: Readiness,
    metrics: Metrics,
    client: str,
    metrics_allow: tuple[Network, ...],
) -> Response | None:
    """The response to ``GET path`` when it is a probe (:data:`PROBE_PATHS`), else
    None. ``client`` is the client's address; ``metrics_allow`` who may read
    ``/metrics`` here (empty: nobody, as when it has a port of its own)."""
    if path == "/healthz":
        return _text(HTTPStatus.OK, "vivo")
    if path == "/readyz":
        reason = readiness.reason
        if reason is None:
            return _text(HTTPStatus.OK, "pronto")
        return _text(HTTPStatus.SERVICE_UNAVAILABLE, reason)
    if path == "/metrics":
        if not inside(client, metrics_allow):
            return _text(HTTPStatus.FORBIDDEN, "Métricas só para os endereços de --metrics-allow.")
        body = metrics.render()
        headers = Headers([("Content-Type", CONTENT_TYPE), ("Content-Length", str(len(body)))])
        return Response(200, "OK", headers, body)
    return None
