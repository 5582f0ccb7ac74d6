"""Who may hold a connection open: caps on connections, in total and per address.

Pure bookkeeping (no sockets), so each cap is a unit test. The server asks
:meth:`Gate.admit` the moment TCP is accepted, before a byte is read, and answers a
refusal with an HTTP status and one sentence; a connection counts as *waiting* until
its session is open (its handshake and hello still to come), and waiting connections
have caps of their own, lower than the totals, because they cost the server without
serving anyone yet.

Behind a trusted proxy (``serve --trust-proxy``) every connection comes from the
proxy's address, and who the client is becomes known only with its first bytes (a
PROXY header) or its HTTP request (``X-Forwarded-For``). At accept, a trusted proxy's
connections count under a cap of their own (``max_per_proxy``, besides the totals);
:meth:`Gate.readdress` then moves each one to its client's address and applies the
per-address caps there, so one client behind the proxy cannot take the room of the
others, and the proxy's address is never one client's.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from http import HTTPStatus

__all__ = ["Caps", "Gate"]


@dataclass(frozen=True, slots=True)
class Caps:
    """Connection caps; see :class:`Gate`."""

    max_connections: int = 10_000
    max_per_address: int = 64
    max_waiting: int = 1_000
    max_waiting_per_address: int = 16
    max_per_proxy: int = 10_000  # connections of one trusted proxy not yet readdressed


class Gate:
    """Counts open connections per address, and those still waiting for a session."""

    def __init__(self, caps: Caps = Caps()) -> None:
        self.caps = caps
        self._open: Counter[str] = Counter()
        self._waiting: Counter[str] = Counter()
        self.open_total = 0
        self.waiting_total = 0

    def admit(self, address: str, *, proxy: bool = False) -> tuple[HTTPStatus, str] | None:
        """Count a new connection from ``address``, or say why it is refused.

        ``proxy``: ``address`` is a trusted proxy's; only the totals and
        ``max_per_proxy`` apply until :meth:`readdress` names the client."""
        caps = self.caps
        if self.open_total >= caps.max_connections:
            return HTTPStatus.SERVICE_UNAVAILABLE, "Servidor lotado: tente de novo em instantes."
        if self.waiting_total >= caps.max_waiting:
            return (
                HTTPStatus.SERVICE_UNAVAILABLE,
                "Conexões demais esperando para entrar: tente de novo em instantes.",
            )
        if proxy and self._open[address] >= caps.max_per_proxy:
            return (
                HTTPStatus.SERVICE_UNAVAILABLE,
                f"Conexões demais através do proxy (limite {caps.max_per_proxy}).",
            )
        refusal = None if proxy else self._address_refusal(address)
        if refusal is None:
            self._count(address)
        return refusal

    def readdress(self, old: str, new: str) -> tuple[HTTPStatus, str] | None:
        """Move a connection still waiting for its session from ``old`` (a trusted
        proxy) to ``new`` (its client), if ``new`` is under its per-address caps;
        otherwise it stays counted under ``old`` (and is refused by the caller)."""
        if new == old:
            return None
        refusal = self._address_refusal(new)
        if refusal is None:
            self._drop(self._open, old)
            self._drop(self._waiting, old)
            self._open[new] += 1
            self._waiting[new] += 1
        return refusal

    def _address_refusal(self, address: str) -> tuple[HTTPStatus, str] | None:
        caps = self.caps
        if self._open[address] >= caps.max_per_address:
            return (
                HTTPStatus.TOO_MANY_REQUESTS,
                f"Conexões demais a partir do seu endereço (limite {caps.max_per_address}).",
            )
        if self._waiting[address] >= caps.max_waiting_per_address:
            return (
                HTTPStatus.TOO_MANY_REQUESTS,
                "Conexões demais do seu endereço esperando para entrar "
                f"(limite {caps.max_waiting_per_address}).",
            )
        return None

    def _count(self, address: str) -> None:
        self._open[address] += 1
        self._waiting[address] += 1
        self.open_total += 1
        self.waiting_total += 1

    def seated(self, address: str) -> None:
        """A connection of ``address`` got its session: it waits no more."""
        self._drop(self._waiting, address)
        self.waiting_total -= 1

    def left(self, address: str, *, seated: bool) -> None:
        """An admitted connection closed (``seated``: whether it had got a session)."""
        self._drop(self._open, address)
        self.open_total -= 1
        if not seated:
            self._drop(self._waiting, address)
            self.waiting_total -= 1

    @staticmethod
    def _drop(counter: Counter[str], address: str) -> None:
        counter[address] -= 1
        if counter[address] <= 0:
            del counter[address]
