"""Who may hold a connection open: caps on connections, in total and per address.

Pure bookkeeping (no sockets), so each cap is a unit test. The server asks
:meth:`Gate.admit` the moment TCP is accepted, before a byte is read, and answers a
refusal with an HTTP status and one sentence; a connection counts as *waiting* until
its session is open (its handshake and hello still to come), and waiting connections
have caps of their own, lower than the totals, because they cost the server without
serving anyone yet.
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


class Gate:
    """Counts open connections per address, and those still waiting for a session."""

    def __init__(self, caps: Caps = Caps()) -> None:
        self.caps = caps
        self._open: Counter[str] = Counter()
        self._waiting: Counter[str] = Counter()
        self.open_total = 0
        self.waiting_total = 0

    def admit(self, address: str) -> tuple[HTTPStatus, str] | None:
        """Count a new connection from ``address``, or say why it is refused."""
        caps = self.caps
        if self.open_total >= caps.max_connections:
            return HTTPStatus.SERVICE_UNAVAILABLE, "Servidor lotado: tente de novo em instantes."
        if self.waiting_total >= caps.max_waiting:
            return (
                HTTPStatus.SERVICE_UNAVAILABLE,
                "Conexões demais esperando para entrar: tente de novo em instantes.",
            )
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
        self._open[address] += 1
        self._waiting[address] += 1
        self.open_total += 1
        self.waiting_total += 1
        return None

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
