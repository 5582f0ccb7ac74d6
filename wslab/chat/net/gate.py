"""Who may hold a connection open: caps on connections, in total, per host and per
network, and room made for newcomers when the waiting pool is full.

Pure bookkeeping (no sockets, the caller passes the clock), so each rule is a unit
test. The server asks :meth:`Gate.admit` the moment TCP is accepted, before a byte is
read, and answers a refusal with an HTTP status and one sentence. A connection counts
as *waiting* until its session is open (its handshake and hello still to come);
waiting connections have caps of their own, lower than the totals, because they cost
the server without serving anyone yet.

Addresses count twice (:mod:`..rules.addresses`): as a host (an IPv4 address, an IPv6
/64) and as a network (an IPv4 /24, an IPv6 /48), each with its caps, so one IPv6
host or one range of many addresses cannot fill the caps meant for many clients.

Behind a trusted proxy (``serve --trust-proxy``) every connection comes from the
proxy's address, and who the client is becomes known only with its first bytes (a
PROXY header) or its HTTP request (``X-Forwarded-For``). At accept, a trusted proxy's
connections count under a cap of their own (``max_per_proxy``, besides the totals);
:meth:`Gate.readdress` then moves each one to its client's host and network and
applies their caps there, so one client behind the proxy cannot take the room of the
others, and the proxy's address is never one client's.

When the waiting pool is full, a newcomer is not refused: the oldest waiting
connection of the network holding the most waiting ones is cut to make room (a
flood of slow handshakes from many addresses then churns its own connections and
new users still get in). Under pressure (the pool over half full) the time a
connection may wait is cut from ``open_timeout + hello_timeout`` to
:data:`PRESSED_WAIT` seconds (:meth:`Gate.expired`). A connection whose hello has
arrived is logging in (the node bounds that wait): it is never the one cut.

Refused connections are answered and kept half-closed for a moment (so the answer
arrives); at most ``max_refused`` are kept so at once, the others closed at once,
so refusals cannot hold the server's descriptors either.

Memory: ~300 bytes per open connection (its entries in the counters and the queue).
"""

from __future__ import annotations

from collections import Counter, OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Generic, TypeVar

from ..rules.addresses import PREFIXES, Prefixes, address_key, network_key

__all__ = ["PRESSED_WAIT", "Admission", "Caps", "Gate"]

C = TypeVar("C", bound=Hashable)  # a connection, as the caller knows it

PRESSED_WAIT = 3.0  # seconds a connection may wait for its session under pressure
FULL = "Servidor lotado: tente de novo em instantes."
CROWDED = "Conexões demais esperando para entrar: tente de novo em instantes."


@dataclass(frozen=True, slots=True)
class Caps:
    """Connection caps; see :class:`Gate`."""

    max_connections: int = 10_000
    max_per_address: int = 64
    max_per_network: int = 256
    max_waiting: int = 1_000
    max_waiting_per_address: int = 16
    max_waiting_per_network: int = 64
    max_refused: int = 128  # refused connections kept half-closed at once
    max_per_proxy: int = 10_000  # connections of one trusted proxy not yet readdressed
    prefixes: Prefixes = field(default=PREFIXES)


@dataclass(frozen=True, slots=True)
class Admission(Generic[C]):
    """What :meth:`Gate.admit` decided: a refusal (status, sentence) or None, and a
    waiting connection to cut to make room (or None)."""

    refusal: tuple[HTTPStatus, str] | None = None
    evict: C | None = None


class _Entry:
    __slots__ = ("keys", "network", "since", "waiting")

    def __init__(self, keys: tuple[str, ...], network: str, since: float) -> None:
        self.keys = keys  # what it counts under: (host, network), or (proxy,) at first
        self.network, self.since = network, since
        self.waiting = True


class Gate(Generic[C]):
    """Counts open connections per host and network, and those still waiting.

    A waiting connection whose hello arrived (:meth:`heard`: its login is under way,
    bounded by the node) still counts as waiting, but is neither cut to make room nor
    cut for waiting too long. ``C`` is the caller's connection (any hashable object:
    the gate only counts and names it).
    """

    def __init__(self, caps: Caps = Caps()) -> None:
        self.caps = caps
        self._open: Counter[str] = Counter()
        self._waiting: Counter[str] = Counter()
        self._entries: dict[C, _Entry] = {}
        # Waiting and not heard yet, oldest first, and how many per network.
        self._queue: OrderedDict[C, None] = OrderedDict()
        self._queued: Counter[str] = Counter()
        self.open_total = 0
        self.waiting_total = 0
        self.refused_lingering = 0

    @property
    def pressed(self) -> bool:
        """Whether the waiting pool is over half full."""
        return 2 * self.waiting_total > self.caps.max_waiting

    def admit(
        self, connection: C, address: str, now: float, *, proxy: bool = False
    ) -> Admission[C]:
        """Count a new ``connection`` from ``address``, or say why it is refused.

        ``proxy``: ``address`` is a trusted proxy's; only the totals and
        ``max_per_proxy`` apply until :meth:`readdress` names the client."""
        caps = self.caps
        if self.open_total >= caps.max_connections:
            return Admission((HTTPStatus.SERVICE_UNAVAILABLE, FULL))
        if proxy:
            if self._open[address] >= caps.max_per_proxy:
                return Admission(
                    (
                        HTTPStatus.SERVICE_UNAVAILABLE,
                        f"Conexões demais através do proxy (limite {caps.max_per_proxy}).",
                    )
                )
            keys: tuple[str, ...] = (address,)
            network = f"proxy:{address}"
        else:
            host, network = self._keys(address)
            refusal = self._refusal(host, network)
            if refusal is not None:
                return Admission(refusal)
            keys = (host, network)
        evict = None
        if self.waiting_total >= caps.max_waiting:
            if not self._queue:  # every waiting one is logging in: no room to make
                return Admission((HTTPStatus.SERVICE_UNAVAILABLE, CROWDED))
            evict = self._room()
            self._stop_waiting(evict)  # cut: it stays open until it is gone
        for key in keys:
            self._open[key] += 1
            self._waiting[key] += 1
        self.open_total += 1
        self.waiting_total += 1
        self._entries[connection] = _Entry(keys, network, now)
        self._queue[connection] = None
        self._queued[network] += 1
        return Admission(None, evict)

    def readdress(self, connection: C, address: str) -> tuple[HTTPStatus, str] | None:
        """Move a connection still waiting for its session from its trusted proxy to
        its client's ``address``, if that host and network are under their caps;
        otherwise it stays counted under the proxy (and is refused by the caller)."""
        entry = self._entries[connection]
        keys = self._keys(address)
        if keys == entry.keys:
            return None
        refusal = self._refusal(*keys)
        if refusal is not None:
            return refusal
        for key in entry.keys:
            self._drop(self._open, key)
            if entry.waiting:
                self._drop(self._waiting, key)
        for key in keys:
            self._open[key] += 1
            if entry.waiting:
                self._waiting[key] += 1
        if connection in self._queue:
            self._drop(self._queued, entry.network)
            self._queued[keys[1]] += 1
        entry.keys, entry.network = keys, keys[1]
        return None

    def _keys(self, address: str) -> tuple[str, str]:
        prefixes = self.caps.prefixes
        return address_key(address, prefixes), network_key(address, prefixes)

    def _refusal(self, host: str, network: str) -> tuple[HTTPStatus, str] | None:
        caps = self.caps
        for key, cap, waiting_cap, what in (
            (host, caps.max_per_address, caps.max_waiting_per_address, "do seu endereço"),
            (network, caps.max_per_network, caps.max_waiting_per_network, "da sua rede"),
        ):
            if self._open[key] >= cap:
                return (
                    HTTPStatus.TOO_MANY_REQUESTS,
                    f"Conexões demais a partir {what} (limite {cap}).",
                )
            if self._waiting[key] >= waiting_cap:
                return (
                    HTTPStatus.TOO_MANY_REQUESTS,
                    f"Conexões demais {what} esperando para entrar (limite {waiting_cap}).",
                )
        return None

    def _room(self) -> C:
        """The waiting connection to cut for a newcomer: the oldest of the network
        holding the most waiting connections (not heard yet)."""
        heaviest = self._queued.most_common(1)[0][0]
        return next(c for c in self._queue if self._entries[c].network == heaviest)

    def heard(self, connection: C) -> None:
        """``connection``'s hello arrived: no longer cut to make room nor for its wait."""
        if connection in self._queue:
            del self._queue[connection]
            self._drop(self._queued, self._entries[connection].network)

    def seated(self, connection: C) -> None:
        """``connection`` got its session: it waits no more."""
        self._stop_waiting(connection)

    def _stop_waiting(self, connection: C) -> None:
        entry = self._entries[connection]
        if entry.waiting:
            self.heard(connection)
            entry.waiting = False
            self.waiting_total -= 1
            self._drop(self._waiting, *entry.keys)

    def left(self, connection: C) -> None:
        """An admitted connection closed (unknown ones are ignored)."""
        entry = self._entries.get(connection)
        if entry is None:
            return
        self._stop_waiting(connection)
        del self._entries[connection]
        self._drop(self._open, *entry.keys)
        self.open_total -= 1

    def expired(self, now: float, wait: float) -> list[C]:
        """Waiting connections (not heard yet) to cut at ``now``: those waiting longer
        than ``wait`` seconds (the caller's open plus hello timeouts), or than
        :data:`PRESSED_WAIT` while the pool is over half full. Oldest first; they stay
        counted until :meth:`left`."""
        if self.pressed:
            wait = min(wait, PRESSED_WAIT)
        found: list[C] = []
        for connection in self._queue:
            if now - self._entries[connection].since <= wait:
                break  # the queue is in arrival order: the rest are younger
            found.append(connection)
        return found

    def refused(self) -> bool:
        """A refused connection wants to linger half-closed: whether it may (the
        caller then calls :meth:`refused_done` when it closes it)."""
        if self.refused_lingering >= self.caps.max_refused:
            return False
        self.refused_lingering += 1
        return True

    def refused_done(self) -> None:
        self.refused_lingering -= 1

    @staticmethod
    def _drop(counter: Counter[str], *keys: str) -> None:
        for key in keys:
            counter[key] -= 1
            if counter[key] <= 0:
                del counter[key]
