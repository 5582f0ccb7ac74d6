"""How a client's address is counted by the per-address limits."""

from __future__ import annotations

import ipaddress

__all__ = ["address_key"]


def address_key(address: str) -> str:
    """The key an address is limited under: the IPv4 address, or the IPv6 /64 (one
    host usually owns a whole /64, so single IPv6 addresses cost an attacker nothing)."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address[:64]
    if ip.version == 6:
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)
