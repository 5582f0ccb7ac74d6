"""Who gets the next turn of the KDF: logins waiting for scrypt, in priority order.
Pure (no clock, no threads): the node pushes a ticket, pops the next one when a
worker is free, and refuses (1013) the tickets this queue evicts.

Order. Three tiers, strictly one before the other:

- :attr:`Tier.RETURNING`: a registered name from a network it logged in from before
  (its owner, most of the time);
- :attr:`Tier.KNOWN`: a registered name from elsewhere (a new device, or a guess:
  guesses are throttled per name and per address before they get here);
- :attr:`Tier.NEW`: a name to register (the cheapest for an attacker to make up).

Within a tier the networks take turns (round robin; first come, first served inside
one network), so one network with many tickets delays another by one ticket per
turn, not by its whole queue: a ticket waits for at most one ticket of each other
network with tickets in its tier or above, plus the tickets ahead of it in its own.

Room. At most ``capacity`` tickets wait. A newcomer to a full queue takes the place
of a ticket of a lower tier (the newest of the network holding the most tickets in
the lowest tier), or, in its own tier, of the newest ticket of the network holding
the most when that network holds at least two more than the newcomer's; otherwise
the newcomer is the one refused. So a login of a known name is never refused while
a registration waits, and a network cannot fill the queue to keep others out.

Memory: one entry per waiting ticket (~200 bytes), at most ``capacity``.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Hashable
from enum import IntEnum

__all__ = ["LoginQueue", "Tier"]


class Tier(IntEnum):
    """How much a login is trusted to be its name's owner (lower goes first)."""

    RETURNING = 0
    KNOWN = 1
    NEW = 2


class LoginQueue:
    """Tickets waiting for the KDF, by tier and network (see the module docstring).

    Raises:
        ValueError: if ``capacity`` is below 1.
    """

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, not {capacity!r}")
        self.capacity = capacity
        # tier -> network -> tickets, the network whose turn it is first
        self._tiers: list[OrderedDict[Hashable, deque[Hashable]]] = [OrderedDict() for _ in Tier]
        self._where: dict[Hashable, tuple[Tier, Hashable]] = {}

    def __len__(self) -> int:
        return len(self._where)

    def __contains__(self, ticket: Hashable) -> bool:
        return ticket in self._where

    def waiting(self, tier: Tier) -> int:
        """Tickets waiting in ``tier``."""
        return sum(len(tickets) for tickets in self._tiers[tier].values())

    def push(self, ticket: Hashable, tier: Tier, network: Hashable) -> Hashable | None:
        """Queue ``ticket``; returns the ticket refused to make room (``ticket``
        itself when there is none to take), or None when nothing is refused."""
        if ticket in self._where:
            raise ValueError(f"ticket already waiting: {ticket!r}")
        evicted = None
        if len(self._where) >= self.capacity:
            evicted = self._victim(tier, network)
            if evicted is None:
                return ticket
            self.remove(evicted)
        self._tiers[tier].setdefault(network, deque()).append(ticket)
        self._where[ticket] = (tier, network)
        return evicted

    def pop(self) -> Hashable | None:
        """The next ticket to run (None when none waits)."""
        for networks in self._tiers:
            if networks:
                network, tickets = next(iter(networks.items()))
                ticket = tickets.popleft()
                if tickets:
                    networks.move_to_end(network)  # its next ticket waits for a turn
                else:
                    del networks[network]
                del self._where[ticket]
                return ticket
        return None

    def remove(self, ticket: Hashable) -> bool:
        """Forget a ticket that gave up waiting; whether it was waiting."""
        found = self._where.pop(ticket, None)
        if found is None:
            return False
        tier, network = found
        tickets = self._tiers[tier][network]
        tickets.remove(ticket)
        if not tickets:
            del self._tiers[tier][network]
        return True

    def _victim(self, tier: Tier, network: Hashable) -> Hashable | None:
        lowest = max(t for t in Tier if self._tiers[t])
        if lowest < tier:
            return None
        networks = self._tiers[lowest]
        heaviest = max(networks, key=lambda n: len(networks[n]))
        if lowest == tier:
            own = len(networks.get(network, ()))
            if len(networks[heaviest]) < own + 2:
                return None
        return networks[heaviest][-1]
