"""The client's address behind a proxy: the one address every per-address rule keys on.

A node reached directly sees its client as the TCP peer. Behind a proxy (Caddy, nginx,
a cloud balancer) every client has the proxy's address, and the caps on connections,
the login throttle, the new names per minute and the share of the line rate would all
count every user as one. The proxy says who the client is, in one of three ways
(:data:`SOURCES`):

- ``X-Forwarded-For: client, proxy1, proxy2``: each proxy appends the address it got
  the request from (nginx's ``$proxy_add_x_forwarded_for``; Caddy, which also drops
  what an untrusted client wrote there);
- RFC 7239 ``Forwarded: for=client;proto=https, for=proxy1``: the same list, standard;
- the PROXY protocol header (HAProxy's specification, v1 text or v2 binary), written
  by a layer 4 balancer before the first byte of the connection.

Anyone can write such headers, so they are read only when the TCP peer is inside a
network the operator trusts (``serve --trust-proxy CIDR``), and only from the one
source the operator names: a proxy that sets ``X-Forwarded-For`` passes a client's own
``Forwarded`` through untouched, so reading both would let the client choose its
address. The hops are walked from the right (:func:`client_address`): the rightmost
address that is not itself a trusted proxy is the client; whatever lies left of it was
written by the client, and is never parsed.

Pure functions of bytes and strings, no sockets, so each rule has a property test
(``tests/chat/net/test_proxy.py``). Costs: one header of at most websockets' 8 KiB
line; a PROXY header of at most 107 bytes (v1) or 16 + 65,535 bytes (v2).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address, ip_network

from ..errors import ProxyHeaderError

__all__ = [
    "PROXY_V1_MAX",
    "PROXY_V2_SIGNATURE",
    "SOURCES",
    "Client",
    "ProxyHeader",
    "TrustedProxies",
    "canonical_address",
    "client_address",
    "forwarded_for",
    "forwarded_hops",
    "inside",
    "parse_networks",
    "parse_proxy_header",
    "proxy_header_start",
]

Network = IPv4Network | IPv6Network


# Where a trusted proxy says who the client is (``serve --proxy-header``).
SOURCES = ("x-forwarded-for", "forwarded", "proxy-protocol")

PROXY_V1_SIGNATURE = b"PROXY "
PROXY_V1_MAX = 107  # bytes of the longest v1 line, CRLF included (the specification, 2.1)
PROXY_V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
_V2_FIXED = 16  # signature, version and command, family and protocol, length
_PORT = re.compile(rb"0|[1-9][0-9]{0,4}")  # decimal, no leading zero (2.1)


# -- trusted networks ------------------------------------------------------------------


def parse_networks(texts: Iterable[str]) -> tuple[Network, ...]:
    """Networks from ``10.0.0.0/8``-like texts (a bare address is a /32 or /128).

    Raises:
        ValueError: (a pt-BR sentence, shown by the CLI) a text is not a network.
    """
    networks = []
    for text in texts:
        try:
            networks.append(ip_network(text.strip(), strict=False))
        except ValueError:
            raise ValueError(
                f"{text[:60]!r} não é uma rede: use um endereço ou um CIDR, como 10.0.0.0/8."
            ) from None
    return tuple(networks)


class TrustedProxies:
    """The networks whose peers may say who the client is, and which way.

    ``source`` is one of :data:`SOURCES`. With no networks, nobody is trusted and every
    client is its TCP peer.
    """

    def __init__(self, networks: Iterable[Network] = (), source: str = "x-forwarded-for") -> None:
        if source not in SOURCES:
            raise ValueError(f"source must be one of {SOURCES}, not {source!r}")
        self.networks = tuple(networks)
        self.source = source

    def __bool__(self) -> bool:
        return bool(self.networks)

    def __contains__(self, address: object) -> bool:
        """Whether ``address`` (a canonical address string) is a trusted proxy."""
        return isinstance(address, str) and inside(address, self.networks)


def inside(address: str, networks: tuple[Network, ...]) -> bool:
    """Whether ``address`` (an address string) is in one of ``networks``."""
    if not networks:
        return False
    try:
        ip = ip_address(address)
    except ValueError:
        return False
    return any(ip.version == net.version and ip in net for net in networks)


# -- addresses in headers --------------------------------------------------------------


def canonical_address(text: str) -> str | None:
    """The address in one hop of a header, canonical (``2001:db8::1``, an IPv4-mapped
    IPv6 as its IPv4), or None when it is none.

    Accepts what proxies write: ``192.0.2.1``, ``192.0.2.1:4711``, ``2001:db8::1``,
    ``[2001:db8::1]`` and ``[2001:db8::1]:4711``; not names, ``unknown``, RFC 7239's
    obfuscated ``_identifiers`` nor IPv6 zones.
    """
    text = text.strip()
    if text.startswith("["):
        text, bracket, port = text[1:].partition("]")
        if not bracket or ":" not in text or not _port_suffix(port):
            return None  # brackets hold an IPv6 address only
    elif text.count(":") == 1:  # IPv4 with a port
        text, port = text.split(":")
        if not _port_suffix(":" + port):
            return None
    if "%" in text or not text.isascii():
        return None
    try:
        return _mapped(ip_address(text))
    except ValueError:
        return None


def _port_suffix(text: str) -> bool:
    """Whether ``text`` is empty or ``:PORT``, a decimal port."""
    port = text.removeprefix(":")
    return not text or (
        text.startswith(":") and port.isascii() and port.isdigit() and int(port) <= 65535
    )


def forwarded_for(values: Sequence[str]) -> list[str]:
    """The hops of ``X-Forwarded-For`` headers, leftmost first; repeated headers are one
    list, in order (RFC 9110, 5.3). Hops are not parsed here: see :func:`client_address`."""
    return [hop.strip() for value in values for hop in value.split(",")]


def forwarded_hops(values: Sequence[str]) -> list[str]:
    """The ``for=`` of each element of RFC 7239 ``Forwarded`` headers, leftmost first,
    unquoted; an element without ``for`` (or that cannot be read) gives ``""``.

    Commas and semicolons inside quoted strings do not split (RFC 7239, 4).
    """
    hops = []
    for value in values:
        for element in _split_quoted(value, ","):
            found = ""
            for pair in _split_quoted(element, ";"):
                name, equals, raw = pair.partition("=")
                if equals and name.strip().lower() == "for":
                    found = _unquote(raw.strip())
                    break
            hops.append(found)
    return hops


def _split_quoted(text: str, separator: str) -> list[str]:
    """``text`` split at ``separator`` outside double quotes (with backslash escapes)."""
    parts, start, quoted, escaped = [], 0, False, False
    for index, char in enumerate(text):
        if escaped:
            escaped = False
        elif char == "\\" and quoted:
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif char == separator and not quoted:
            parts.append(text[start:index])
            start = index + 1
    parts.append(text[start:])
    return parts


def _unquote(raw: str) -> str:
    if len(raw) >= 2 and raw[0] == raw[-1] == '"':
        return re.sub(r"\\(.)", r"\1", raw[1:-1])
    return raw


@dataclass(frozen=True, slots=True)
class Client:
    """Who a connection's client is: ``address`` (canonical), and ``problem`` when a
    trusted proxy's header could not be read (``"bad-x-forwarded-for"``...) and the
    proxy's own address stands in."""

    address: str
    problem: str | None = None


def client_address(
    peer: str, trusted: TrustedProxies, hops: Sequence[str], *, source: str | None = None
) -> Client:
    """The client of a request that reached us from TCP ``peer`` with ``hops`` (from
    :func:`forwarded_for`, :func:`forwarded_hops`, or ``[source]`` of a PROXY header),
    leftmost first.

    From an untrusted peer the hops are ignored. Otherwise they are walked from the
    right: a trusted address is one more proxy, the first untrusted one is the client.
    When every hop is trusted, the leftmost is the client (a proxy's own request, such
    as a health check); with no hops, the peer itself. A hop that is not an address
    stops the walk: the last proxy reached stands in, with ``problem`` saying so
    (``"bad-" + source``).
    """
    current = canonical_address(peer) or peer
    if current not in trusted:
        return Client(current)
    for hop in reversed(hops):
        address = canonical_address(hop)
        if address is None:
            return Client(current, f"bad-{source or trusted.source}")
        if address not in trusted:
            return Client(address)
        current = address
    return Client(current)


# -- the PROXY protocol header (HAProxy's specification, v1 and v2) -------------------


@dataclass(frozen=True, slots=True)
class ProxyHeader:
    """A PROXY header read whole: ``length`` bytes long; ``source`` is the client's
    address, or None when the header says to use the connection's own (v1 ``UNKNOWN``,
    v2 ``LOCAL`` such as a health check, an unspecified or UNIX family)."""

    source: str | None
    length: int
    version: int


def proxy_header_start(data: bytes) -> bool | None:
    """Whether ``data`` (the first bytes of a connection) starts a PROXY header: True or
    False, or None while too short to tell. An HTTP request is told apart within its
    first four bytes (``PROPFIND``)."""
    for signature in (PROXY_V1_SIGNATURE, PROXY_V2_SIGNATURE):
        shared = min(len(data), len(signature))
        if data[:shared] == signature[:shared]:
            return True if shared == len(signature) else None
    return False


def parse_proxy_header(data: bytes) -> ProxyHeader | None:
    """The PROXY header at the start of ``data``, or None while more bytes are needed.

    Everything after ``length`` bytes is the proxied stream. Only what the
    specification allows is accepted; a receiver must abort on anything else.

    Raises:
        ProxyHeaderError: ``data`` does not start with a valid v1 or v2 header.
    """
    start = proxy_header_start(data)
    if start is None:
        return None
    if not start:
        raise ProxyHeaderError("A conexão não começa com um cabeçalho PROXY.")
    if data.startswith(PROXY_V1_SIGNATURE):
        return _parse_v1(data)
    return _parse_v2(data)


def _parse_v1(data: bytes) -> ProxyHeader | None:
    end = data.find(b"\r\n", 0, PROXY_V1_MAX)
    if end < 0:
        if len(data) >= PROXY_V1_MAX:
            raise ProxyHeaderError("Cabeçalho PROXY v1 sem CRLF nos primeiros 107 bytes.")
        if b"\n" in data or b"\r" in data[:-1]:
            raise ProxyHeaderError("Cabeçalho PROXY v1 com CR ou LF sozinho.")
        return None
    parts = data[:end].split(b" ")
    length = end + 2
    if parts[1:2] == [b"UNKNOWN"]:
        return ProxyHeader(None, length, 1)  # the rest of the line is ignored (2.1)
    if len(parts) != 6 or parts[1] not in (b"TCP4", b"TCP6"):
        raise ProxyHeaderError("Cabeçalho PROXY v1 malformado.")
    kind = IPv4Address if parts[1] == b"TCP4" else IPv6Address
    try:
        if b"%" in parts[2] + parts[3]:
            raise ValueError("an IPv6 zone")
        source, _destination = (kind(part.decode("ascii")) for part in parts[2:4])
    except (ValueError, UnicodeDecodeError):
        raise ProxyHeaderError("Cabeçalho PROXY v1 com endereço inválido.") from None
    if kind is IPv4Address and parts[2].decode() != str(source):
        raise ProxyHeaderError("Cabeçalho PROXY v1 com endereço inválido.")  # 010.0.0.1
    for port in parts[4:6]:
        if not _PORT.fullmatch(port) or int(port) > 65535:
            raise ProxyHeaderError("Cabeçalho PROXY v1 com porta inválida.")
    return ProxyHeader(_mapped(source), length, 1)


def _parse_v2(data: bytes) -> ProxyHeader | None:
    if len(data) < _V2_FIXED:
        return None
    version_command, family_protocol = data[12], data[13]
    if version_command >> 4 != 2 or version_command & 0x0F > 1:
        raise ProxyHeaderError("Cabeçalho PROXY v2 com versão ou comando inválido.")
    family, protocol = family_protocol >> 4, family_protocol & 0x0F
    if family > 3 or protocol > 2:
        raise ProxyHeaderError("Cabeçalho PROXY v2 com família ou protocolo inválido.")
    length = _V2_FIXED + int.from_bytes(data[14:16], "big")
    if len(data) < length:
        return None
    if version_command & 0x0F == 0 or protocol == 0 or family in (0, 3):
        return ProxyHeader(None, length, 2)  # LOCAL, unspecified or UNIX: the real peer
    size = 4 if family == 1 else 16
    if length - _V2_FIXED < 2 * size + 4:
        raise ProxyHeaderError("Cabeçalho PROXY v2 curto demais para os endereços.")
    raw = data[_V2_FIXED : _V2_FIXED + size]
    source = IPv4Address(raw) if family == 1 else IPv6Address(raw)
    return ProxyHeader(_mapped(source), length, 2)


def _mapped(ip: IPv4Address | IPv6Address) -> str:
    if isinstance(ip, IPv6Address) and ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    return str(ip)
