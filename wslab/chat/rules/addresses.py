"""How a client's address is counted by the per-address limits: by host and by network.

A host is an IPv4 address or an IPv6 /64 (one host usually owns a whole /64, so single
IPv6 addresses cost an attacker nothing); a network is an IPv4 /24 or an IPv6 /48 (a
site: what one customer of a provider or one cloud tenant usually holds). Every limit
that counts addresses (connection caps, registrations, wrong secrets) counts both, the
network's limit a few times the host's, so many addresses of one range add up.
The prefix lengths are settings (:class:`Prefixes`).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

__all__ = ["Prefixes", "address_key", "network_key"]


@dataclass(frozen=True, slots=True)
class Prefixes:
    """Prefix lengths: an IPv6 host (/64), an IPv4 network (/24), an IPv6 network (/48)."""

    ipv6_host: int = 64
    ipv4_network: int = 24
    ipv6_network: int = 48

    def __post_init__(self) -> None:
        if not (0 <= self.ipv4_network <= 32 and 0 <= self.ipv6_network <= self.ipv6_host <= 128):
            raise ValueError(f"need 0 <= IPv4 <= 32 and 0 <= IPv6 network <= host <= 128: {self}")


PREFIXES = Prefixes()


def _parse(address: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return None
    if ip.version == 6 and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def _prefix(ip: ipaddress.IPv4Address | ipaddress.IPv6Address, length: int) -> str:
    if length == ip.max_prefixlen:
        return str(ip)
    return str(ipaddress.ip_network(f"{ip}/{length}", strict=False))


def address_key(address: str, prefixes: Prefixes = PREFIXES) -> str:
    """The host an address counts as: the IPv4 address, or its IPv6 /64."""
    ip = _parse(address)
    if ip is None:
        return address[:64]
    return str(ip) if ip.version == 4 else _prefix(ip, prefixes.ipv6_host)


def network_key(address: str, prefixes: Prefixes = PREFIXES) -> str:
    """The network an address counts in: its IPv4 /24 or its IPv6 /48."""
    ip = _parse(address)
    if ip is None:
        return "net:" + address[:64]
    length = prefixes.ipv4_network if ip.version == 4 else prefixes.ipv6_network
    return "net:" + _prefix(ip, length)
