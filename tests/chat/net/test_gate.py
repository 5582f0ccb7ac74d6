"""Who may hold a connection open (wslab.chat.net.gate): caps in total and per address,
lower caps for connections still waiting for their session, and a trusted proxy's
connections moved to their clients' addresses. Pure bookkeeping: no sockets."""

from http import HTTPStatus

import pytest

from wslab.chat.net.gate import PRESSED_WAIT, Caps, Gate
from wslab.chat.rules.addresses import Prefixes, address_key, network_key


class Conn:
    """A connection as the gate sees it: any hashable object."""

    def __init__(self, address: str) -> None:
        self.address = address


def admit(gate, conn, proxy=False):
    """The gate's refusal for ``conn`` (None: let in); at time 0, nothing to cut."""
    admission = gate.admit(conn, conn.address, 0.0, proxy=proxy)
    assert admission.evict is None
    return admission.refusal


def admitted(gate, address, count, **options):
    """Admit ``count`` connections from ``address``; each must be let in."""
    conns = [Conn(address) for _ in range(count)]
    for conn in conns:
        assert admit(gate, conn, **options) is None
    return conns


def test_connections_of_one_address_are_capped_with_429():
    gate = Gate(Caps(max_per_address=3, max_waiting_per_address=10))
    admitted(gate, "10.0.0.1", 3)
    status, sentence = admit(gate, Conn("10.0.0.1"))
    assert status == HTTPStatus.TOO_MANY_REQUESTS
    assert sentence == "Conexões demais a partir do seu endereço (limite 3)."
    assert admit(gate, Conn("10.0.0.2")) is None  # another address is not concerned
    assert (gate.open_total, gate.waiting_total) == (4, 4)  # the refused one is not counted


def test_waiting_connections_of_one_address_have_a_lower_cap_and_a_session_frees_its_place():
    gate = Gate(Caps(max_per_address=5, max_waiting_per_address=2))
    first, _ = admitted(gate, "10.0.0.1", 2)
    status, sentence = admit(gate, Conn("10.0.0.1"))
    assert status == HTTPStatus.TOO_MANY_REQUESTS and "esperando para entrar (limite 2)" in sentence
    gate.seated(first)  # one got its session: it waits no more
    assert admit(gate, Conn("10.0.0.1")) is None
    assert (gate.open_total, gate.waiting_total) == (3, 2)


def test_the_total_is_capped_with_503():
    gate = Gate(Caps(max_connections=3, max_waiting=10))
    for n in range(3):
        admitted(gate, f"10.0.{n}.1", 1)
    assert admit(gate, Conn("10.0.9.1")) == (
        HTTPStatus.SERVICE_UNAVAILABLE,
        "Servidor lotado: tente de novo em instantes.",
    )


@pytest.mark.parametrize("seated", [True, False])
def test_a_connection_that_left_gives_its_place_back(seated):
    caps = Caps(max_connections=2, max_per_address=2, max_waiting=2, max_waiting_per_address=2)
    gate = Gate(caps)
    first, _ = admitted(gate, "10.0.0.1", 2)
    if seated:
        gate.seated(first)
    gate.left(first)
    assert (gate.open_total, gate.waiting_total) == (1, 1)
    assert admit(gate, Conn("10.0.0.1")) is None  # its place, per address and in total
    assert admit(gate, Conn("10.0.0.1")) is not None


def test_the_counts_go_back_to_zero():
    gate = Gate(Caps(max_per_address=2, max_waiting_per_address=1))
    for round_ in range(3):  # the same caps hold every round: nothing leaks
        (seated,) = admitted(gate, "10.0.0.1", 1)
        gate.seated(seated)
        (waiting,) = admitted(gate, "10.0.0.1", 1)
        assert admit(gate, Conn("10.0.0.1")) is not None, round_
        gate.left(seated)
        gate.left(waiting)
        assert (gate.open_total, gate.waiting_total) == (0, 0)


# -- behind a trusted proxy ---------------------------------------------------------------


def test_a_proxys_connections_count_under_their_own_cap_until_readdressed():
    gate = Gate(Caps(max_per_address=2, max_waiting_per_address=2, max_per_proxy=4))
    admitted(gate, "10.9.9.9", 4, proxy=True)  # more than one address may hold
    status, sentence = admit(gate, Conn("10.9.9.9"), proxy=True)
    assert status == HTTPStatus.SERVICE_UNAVAILABLE
    assert sentence == "Conexões demais através do proxy (limite 4)."
    assert (gate.open_total, gate.waiting_total) == (4, 4)


def test_readdress_moves_a_connection_to_its_clients_address_under_that_addresss_caps():
    gate = Gate(Caps(max_per_address=2, max_waiting_per_address=2, max_per_proxy=10))
    a, b, c = admitted(gate, "10.9.9.9", 3, proxy=True)
    assert gate.readdress(a, "203.0.113.5") is None
    assert gate.readdress(b, "203.0.113.5") is None
    status, _ = gate.readdress(c, "203.0.113.5")  # a third from one client
    assert status == HTTPStatus.TOO_MANY_REQUESTS
    assert (gate.open_total, gate.waiting_total) == (3, 3)  # the totals did not move
    # The client's two count as its own: one more straight from it is refused too.
    assert admit(gate, Conn("203.0.113.5")) is not None
    # The refused one stayed under the proxy, which gets its place back when it leaves.
    gate.left(c)
    admitted(gate, "10.9.9.9", 10, proxy=True)  # its cap, whole again
    assert admit(gate, Conn("10.9.9.9"), proxy=True) is not None


def test_readdress_to_the_same_address_changes_nothing():
    gate = Gate(Caps(max_per_address=1, max_waiting_per_address=1))
    (conn,) = admitted(gate, "10.0.0.1", 1)
    assert gate.readdress(conn, "10.0.0.1") is None
    assert (gate.open_total, gate.waiting_total) == (1, 1)


# -- issue 24: hosts and networks, room made, refused sockets bounded -------------------


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
