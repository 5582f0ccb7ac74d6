"""The client's address behind a proxy (wslab.chat.net.proxy): property tests.

The PROXY headers here are built by this test's own encoder, written from HAProxy's
specification and sharing no code with the parser; the tests with the real Caddy
(which writes v1 and v2 headers itself) are in tests/chat/test_production.py.
"""

from __future__ import annotations

import struct
from ipaddress import IPv4Address, IPv6Address, ip_address

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wslab.chat.errors import ProxyHeaderError
from wslab.chat.net.proxy import (
    PROXY_V1_MAX,
    PROXY_V2_SIGNATURE,
    Client,
    TrustedProxies,
    canonical_address,
    client_address,
    forwarded_for,
    forwarded_hops,
    parse_networks,
    parse_proxy_header,
    proxy_header_start,
)

ipv4 = st.builds(IPv4Address, st.integers(0, 2**32 - 1))
ipv6 = st.builds(IPv6Address, st.integers(0, 2**128 - 1))
addresses = st.one_of(ipv4, ipv6)
ports = st.integers(0, 65535)
TRUSTED = TrustedProxies(parse_networks(["10.0.0.0/8", "fd00::/8"]))
outside = addresses.filter(lambda ip: canonical_address(str(ip)) not in TRUSTED)
inside = st.one_of(
    st.builds(lambda n: IPv4Address(0x0A000000 + n), st.integers(0, 2**24 - 1)),
    st.builds(lambda n: IPv6Address((0xFD << 120) + n), st.integers(0, 2**120 - 1)),
)
# Whatever a client may write in a header: addresses, names, garbage, separators.
junk = st.one_of(
    st.text(max_size=30),
    addresses.map(str),
    inside.map(str),
    st.sampled_from(["unknown", "_hidden", "[::1]:80", "1.2.3.4:5", "", " , ", '"x;y"']),
)


def written(ip: IPv4Address | IPv6Address, port: int | None, bracket: bool) -> str:
    """``ip`` as a proxy may write it in a header (with a port, IPv6 in brackets)."""
    text = f"[{ip}]" if ip.version == 6 and (bracket or port is not None) else str(ip)
    return text if port is None else f"{text}:{port}"


# -- networks and addresses -----------------------------------------------------------


def test_networks_are_parsed_and_bad_ones_say_why_in_portuguese():
    assert [str(n) for n in parse_networks(["10.1.2.3/8", "::1", "192.0.2.7"])] == [
        "10.0.0.0/8",
        "::1/128",
        "192.0.2.7/32",
    ]
    for bad in ["10.0.0.0/33", "caddy", "", "10.0.0.0/8/8"]:
        with pytest.raises(ValueError, match="não é uma rede"):
            parse_networks([bad])


def test_nobody_is_trusted_without_networks():
    assert "127.0.0.1" not in TrustedProxies()
    assert not TrustedProxies()
    assert "10.2.3.4" in TRUSTED and "11.0.0.1" not in TRUSTED and "fd12::1" in TRUSTED


@given(addresses, st.one_of(st.none(), ports), st.booleans())
def test_every_way_a_proxy_writes_an_address_reads_back_canonical(ip, port, bracket):
    canonical = str(ip.ipv4_mapped) if ip.version == 6 and ip.ipv4_mapped else str(ip)
    assert canonical_address(written(ip, port, bracket)) == canonical
    assert canonical_address(f"  {written(ip, port, bracket)} ") == canonical


@pytest.mark.parametrize(
    "text",
    [
        "unknown",
        "_hidden",
        "chat.example.com",
        "1.2.3.4:",
        "1.2.3.4:99999",
        "[1.2.3.4]",
        "[::1",
        "[::1]80",
        "fe80::1%eth0",
        "01.2.3.4",
        "1.2.3.4:+80",
        "١.2.3.4",
        "",
    ],
)
def test_what_is_not_an_address_is_none(text):
    assert canonical_address(text) is None


# -- X-Forwarded-For and Forwarded ----------------------------------------------------


@given(st.lists(junk, max_size=5), st.one_of(addresses, inside))
def test_an_untrusted_peer_changes_nothing_whatever_it_writes(hops, peer):
    """A spoofed X-Forwarded-For (or Forwarded, or anything) from a peer outside the
    trusted networks is ignored: the client is the TCP peer."""
    if str(peer) in TRUSTED:
        return
    expected = canonical_address(str(peer))
    assert client_address(str(peer), TRUSTED, hops) == Client(expected)
    assert client_address(str(peer), TrustedProxies(), hops) == Client(expected)


@given(
    st.lists(junk, max_size=5),
    outside,
    st.lists(inside, max_size=3),
    inside,
    st.one_of(st.none(), ports),
)
def test_behind_trusted_proxies_the_rightmost_untrusted_hop_is_the_client(
    written_by_client, client, proxies, peer, port
):
    """Whatever the client wrote itself (left of its own address) is never read."""
    hops = [*written_by_client, written(client, port, False), *map(str, proxies)]
    found = client_address(str(peer), TRUSTED, hops)
    assert found == Client(canonical_address(str(client)))


@given(st.lists(inside, max_size=3), inside)
def test_when_every_hop_is_trusted_the_leftmost_is_the_client(proxies, peer):
    found = client_address(str(peer), TRUSTED, [str(p) for p in proxies])
    assert found == Client(str(proxies[0]) if proxies else str(peer))


@given(st.lists(inside, max_size=3), inside)
def test_a_malformed_hop_from_a_trusted_proxy_leaves_the_last_proxy(proxies, peer):
    hops = ["not-an-address", *map(str, proxies)]
    found = client_address(str(peer), TRUSTED, hops)
    expected = str(proxies[0]) if proxies else str(peer)
    assert found == Client(expected, "bad-x-forwarded-for")
    assert client_address(str(peer), TRUSTED, hops, source="forwarded").problem == ("bad-forwarded")


def test_repeated_x_forwarded_for_headers_are_one_list_in_order():
    assert forwarded_for(["1.1.1.1, 2.2.2.2", "3.3.3.3"]) == ["1.1.1.1", "2.2.2.2", "3.3.3.3"]
    found = client_address("10.0.0.1", TRUSTED, forwarded_for(["6.6.6.6", "192.0.2.1, 10.9.9.9"]))
    assert found == Client("192.0.2.1")


@given(
    st.lists(
        st.tuples(
            st.one_of(addresses.map(lambda ip: written(ip, None, True)), st.just("unknown")),
            st.one_of(st.none(), ports),
            st.booleans(),
        ),
        min_size=1,
        max_size=4,
    )
)
def test_forwarded_reads_each_elements_for_quoted_or_not(elements):
    """RFC 7239: ``for`` in any position of its element, IPv6 quoted with brackets,
    other parameters beside it with commas and semicolons inside quotes."""
    values, expected = [], []
    for node, port, first in elements:
        value = node if port is None else f"{node}:{port}"
        quoted = f'"{value}"' if ":" in value or "[" in value else value
        pairs = [f"For={quoted}", 'by="[2001:db8::9];x,y"', "proto=https"]
        if not first:
            pairs.reverse()
        values.append(";".join(pairs))
        expected.append(value)
    header = ", ".join(values)
    assert forwarded_hops([header]) == expected
    assert forwarded_hops(values) == expected  # one element per header line, too


def test_forwarded_elements_without_for_are_empty_hops():
    assert forwarded_hops(['proto=https;by=_x, for="\\"q\\""']) == ["", '"q"']
    found = client_address("10.0.0.1", TRUSTED, forwarded_hops(["for=192.0.2.60;proto=http, by=x"]))
    assert found == Client("10.0.0.1", "bad-x-forwarded-for")


# -- PROXY protocol -------------------------------------------------------------------


def v1(source, destination, sport, dport) -> bytes:
    family = "TCP4" if source.version == 4 else "TCP6"
    return f"PROXY {family} {source} {destination} {sport} {dport}\r\n".encode()


def v2(source, destination, sport, dport, *, command=1, tlvs=b"") -> bytes:
    if source.version == 4:
        family, body = 0x11, source.packed + destination.packed
    else:
        family, body = 0x21, source.packed + destination.packed
    body += struct.pack("!HH", sport, dport) + tlvs
    return (
        PROXY_V2_SIGNATURE + bytes([0x20 | command, family]) + struct.pack("!H", len(body)) + body
    )


def same_family(ip):
    return ipv4 if ip.version == 4 else ipv6


headers_and_sources = addresses.flatmap(
    lambda source: st.tuples(
        st.just(source),
        same_family(source),
        ports,
        ports,
        st.sampled_from([1, 2]),
        st.binary(max_size=40),
    )
)


@given(headers_and_sources, st.binary(max_size=60))
def test_a_proxy_header_parses_at_every_cut_and_leaves_the_stream(case, stream):
    """Fed its bytes one prefix at a time, as TCP may deliver them: None until whole,
    then the client's address and the header's exact length (TLVs skipped)."""
    source, destination, sport, dport, version, tlvs = case
    if version == 1:
        header = v1(source, destination, sport, dport)
    else:
        header = v2(source, destination, sport, dport, tlvs=tlvs)
    for cut in range(len(header)):
        assert parse_proxy_header(header[:cut]) is None
    found = parse_proxy_header(header + stream)
    expected = (
        str(source.ipv4_mapped) if source.version == 6 and source.ipv4_mapped else str(source)
    )
    assert (found.source, found.length, found.version) == (expected, len(header), version)


def test_local_unknown_and_unspecified_headers_keep_the_connections_own_address():
    local = v2(IPv4Address("1.2.3.4"), IPv4Address("5.6.7.8"), 1, 2, command=0)
    unspec = PROXY_V2_SIGNATURE + bytes([0x21, 0x00, 0, 3]) + b"abc"
    unix = PROXY_V2_SIGNATURE + bytes([0x21, 0x31, 0, 216]) + bytes(216)
    for header in [b"PROXY UNKNOWN\r\n", b"PROXY UNKNOWN ::1 ::2 1 2\r\n", local, unspec, unix]:
        found = parse_proxy_header(header + b"GET / HTTP/1.1\r\n")
        assert (found.source, found.length) == (None, len(header))


@pytest.mark.parametrize(
    "header",
    [
        b"PROXY TCP4 1.2.3.4 5.6.7.8 80\r\n",  # a field missing
        b"PROXY TCP4 1.2.3.4 5.6.7.8 080 80\r\n",  # leading zero in a port
        b"PROXY TCP4 1.2.3.4 5.6.7.8 65536 80\r\n",
        b"PROXY TCP4 01.2.3.4 5.6.7.8 1 80\r\n",  # leading zero in an address
        b"PROXY TCP4 ::1 ::2 1 80\r\n",  # the wrong family
        b"PROXY TCP6 fe80::1%eth0 ::2 1 80\r\n",
        b"PROXY  TCP4 1.2.3.4 5.6.7.8 1 80\r\n",  # two spaces
        b"PROXY TCP4 1.2.3.4 5.6.7.8 1 80\n",  # LF alone
        b"PROXY TCP4 1.2.3.4\r5.6.7.8 1 80\r\n",
        b"PROXY UDP4 1.2.3.4 5.6.7.8 1 80\r\n",
        b"PROXY " + b"x" * PROXY_V1_MAX,  # no CRLF within 107 bytes
        PROXY_V2_SIGNATURE + bytes([0x10, 0x11, 0, 12]) + bytes(12),  # version 1 in v2
        PROXY_V2_SIGNATURE + bytes([0x22, 0x11, 0, 12]) + bytes(12),  # command 2
        PROXY_V2_SIGNATURE + bytes([0x21, 0x41, 0, 12]) + bytes(12),  # family 4
        PROXY_V2_SIGNATURE + bytes([0x21, 0x13, 0, 12]) + bytes(12),  # protocol 3
        PROXY_V2_SIGNATURE + bytes([0x21, 0x11, 0, 11]) + bytes(11),  # too short
        PROXY_V2_SIGNATURE + bytes([0x21, 0x21, 0, 12]) + bytes(12),  # IPv6 in 12 bytes
        b"GET / HTTP/1.1\r\n",
    ],
)
def test_anything_else_is_refused(header):
    with pytest.raises(ProxyHeaderError):
        parse_proxy_header(header)


@given(st.binary(max_size=200))
def test_any_bytes_parse_refuse_or_wait_never_anything_else(data):
    try:
        found = parse_proxy_header(data)
    except ProxyHeaderError:
        return
    if found is None:
        assert len(data) < PROXY_V1_MAX or data.startswith(PROXY_V2_SIGNATURE)
    else:
        assert found.length <= len(data)
        assert found.source is None or ip_address(found.source)


@given(
    st.sampled_from(["GET", "HEAD", "POST", "PUT", "PATCH", "PROPFIND", "OPTIONS"]),
    st.binary(max_size=20),
)
def test_the_start_of_an_http_request_is_never_taken_for_a_proxy_header(method, rest):
    request = method.encode() + b" /ws HTTP/1.1\r\n" + rest
    assert proxy_header_start(request) is False
    assert proxy_header_start(request[:4]) is False  # PROPFIND parts from PROXY at byte 4


def test_a_proxy_header_is_told_once_its_signature_is_whole():
    assert proxy_header_start(b"PRO") is None
    assert proxy_header_start(b"PROXY ") is True
    assert proxy_header_start(PROXY_V2_SIGNATURE[:5]) is None
    assert proxy_header_start(PROXY_V2_SIGNATURE) is True
