"""Who may hold a connection open (wslab.chat.net.gate) and how addresses are counted
(wslab.chat.rules.addresses): per host and per network, room made when the waiting
pool is full, shorter waits under pressure, refused sockets bounded (issue 24)."""

from http import HTTPStatus

import pytest

from wslab.chat.net.gate import PRESSED_WAIT, Caps, Gate
from wslab.chat.rules.addresses import Prefixes, address_key, network_key


@pytest.mark.parametrize(
    ("address", "host", "network"),
    [
        ("203.0.113.7", "203.0.113.7", "net:203.0.113.0/24"),
        ("::ffff:203.0.113.7", "203.0.113.7", "net:203.0.113.0/24"),
        ("2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64", "net:2001:db8:1::/48"),
        ("2001:db8:1:ffff::1", "2001:db8:1:ffff::/64", "net:2001:db8:1::/48"),
        ("not an address", "not an address", "net:not an address"),
    ],
)
def test_an_address_counts_as_a_host_and_a_network(address, host, network):
    assert (address_key(address), network_key(address)) == (host, network)


def test_the_prefixes_are_settings():
    wide = Prefixes(ipv6_host=56, ipv4_network=16, ipv6_network=32)
    assert address_key("2001:db8:1:2::9", wide) == "2001:db8:1::/56"
    assert network_key("203.0.113.7", wide) == "net:203.0.0.0/16"
    with pytest.raises(ValueError):
        Prefixes(ipv6_host=40, ipv6_network=48)


def test_one_ipv6_host_cannot_fill_the_caps_with_many_addresses():
    """Issue 24: the caps counted each full IPv6 address apart."""
    gate = Gate(Caps(max_per_address=4, max_waiting_per_address=4))
    answers = [gate.admit(n, f"2001:db8::{n:x}", 0.0).refusal for n in range(1, 7)]
    assert answers[:4] == [None] * 4
    assert [a[0] for a in answers[4:]] == [HTTPStatus.TOO_MANY_REQUESTS] * 2


def test_many_addresses_of_one_network_add_up():
    gate = Gate(Caps(max_per_network=10, max_waiting_per_network=6))
    answers = [gate.admit(n, f"198.51.100.{n}", 0.0).refusal for n in range(1, 9)]
    assert answers[:6] == [None] * 6
    assert all(a is not None and "sua rede" in a[1] for a in answers[6:])
    assert gate.admit("elsewhere", "198.51.101.1", 0.0).refusal is None
    for n in range(1, 7):
        gate.seated(n)  # sessions: they wait no more, and the network may wait again
    assert gate.admit(9, "198.51.100.9", 0.0).refusal is None


def test_a_full_waiting_pool_cuts_the_oldest_of_the_network_holding_most():
    gate = Gate(Caps(max_waiting=5, max_waiting_per_address=5, max_waiting_per_network=5))
    for n in range(3):
        assert gate.admit(f"a{n}", "192.0.2.1", float(n)).evict is None
    for n in range(2):
        assert gate.admit(f"b{n}", "198.51.100.1", 10.0 + n).evict is None
    admitted = gate.admit("new", "203.0.113.1", 20.0)
    assert admitted.refusal is None and admitted.evict == "a0"
    assert gate.waiting_total == 5  # a0 waits no more; it stays open until it is gone
    gate.left("a0")
    assert gate.open_total == 5


def test_under_pressure_a_connection_may_wait_less():
    gate = Gate(Caps(max_waiting=4))
    gate.admit("old", "192.0.2.1", 0.0)
    assert gate.expired(5.0, wait=15.0) == []  # not pressed: the full wait
    for n in range(2):
        gate.admit(n, f"198.51.100.{n}", 4.0)
    assert gate.pressed
    assert gate.expired(PRESSED_WAIT + 0.5, wait=15.0) == ["old"]
    gate.seated(0)
    gate.seated(1)
    assert not gate.pressed and gate.expired(PRESSED_WAIT + 4.5, wait=15.0) == []


def test_a_connection_logging_in_is_neither_cut_for_room_nor_for_its_wait():
    gate = Gate(Caps(max_waiting=2, max_waiting_per_address=4, max_waiting_per_network=4))
    gate.admit("owner", "192.0.2.1", 0.0)
    gate.heard("owner")  # its hello arrived: the KDF may take a while
    gate.admit("slow", "192.0.2.2", 1.0)
    assert gate.admit("new", "198.51.100.1", 2.0).evict == "slow"
    assert gate.expired(100.0, wait=15.0) == ["new"]
    gate.heard("new")
    refused = gate.admit("more", "203.0.113.1", 3.0).refusal  # all waiting are logging in
    assert refused is not None and refused[0] == HTTPStatus.SERVICE_UNAVAILABLE
    gate.seated("owner")
    assert gate.waiting_total == 1 and gate.admit("more", "203.0.113.1", 3.0).refusal is None


def test_refused_sockets_that_linger_are_bounded():
    gate = Gate(Caps(max_refused=2))
    assert [gate.refused() for _ in range(3)] == [True, True, False]
    gate.refused_done()
    assert gate.refused()
