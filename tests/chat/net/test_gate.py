"""Who may hold a connection open (wslab.chat.net.gate): caps in total and per address,
lower caps for connections still waiting for their session, and a trusted proxy's
connections moved to their clients' addresses. Pure bookkeeping: no sockets."""

from http import HTTPStatus

import pytest

from wslab.chat.net.gate import Caps, Gate


def admitted(gate, address, count, **options):
    """Admit ``count`` connections from ``address``; each must be let in."""
    for _ in range(count):
        assert gate.admit(address, **options) is None


def test_connections_of_one_address_are_capped_with_429():
    gate = Gate(Caps(max_per_address=3, max_waiting_per_address=10))
    admitted(gate, "10.0.0.1", 3)
    status, sentence = gate.admit("10.0.0.1")
    assert status == HTTPStatus.TOO_MANY_REQUESTS
    assert sentence == "Conexões demais a partir do seu endereço (limite 3)."
    assert gate.admit("10.0.0.2") is None  # another address is not concerned
    assert (gate.open_total, gate.waiting_total) == (4, 4)  # the refused one is not counted


def test_waiting_connections_of_one_address_have_a_lower_cap_and_a_session_frees_its_place():
    gate = Gate(Caps(max_per_address=5, max_waiting_per_address=2))
    admitted(gate, "10.0.0.1", 2)
    status, sentence = gate.admit("10.0.0.1")
    assert status == HTTPStatus.TOO_MANY_REQUESTS and "esperando para entrar (limite 2)" in sentence
    gate.seated("10.0.0.1")  # one got its session: it waits no more
    assert gate.admit("10.0.0.1") is None
    assert (gate.open_total, gate.waiting_total) == (3, 2)


def test_the_totals_are_capped_with_503():
    gate = Gate(Caps(max_connections=3, max_waiting=10))
    for n in range(3):
        admitted(gate, f"10.0.0.{n}", 1)
    assert gate.admit("10.0.0.9") == (
        HTTPStatus.SERVICE_UNAVAILABLE,
        "Servidor lotado: tente de novo em instantes.",
    )
    gate = Gate(Caps(max_connections=10, max_waiting=2))
    admitted(gate, "10.0.0.1", 1)
    admitted(gate, "10.0.0.2", 1)
    status, sentence = gate.admit("10.0.0.3")
    assert status == HTTPStatus.SERVICE_UNAVAILABLE and "esperando para entrar" in sentence
    gate.seated("10.0.0.1")
    assert gate.admit("10.0.0.3") is None


@pytest.mark.parametrize("seated", [True, False])
def test_a_connection_that_left_gives_its_place_back(seated):
    caps = Caps(max_connections=2, max_per_address=2, max_waiting=2, max_waiting_per_address=2)
    gate = Gate(caps)
    admitted(gate, "10.0.0.1", 2)
    if seated:
        gate.seated("10.0.0.1")
    gate.left("10.0.0.1", seated=seated)
    assert (gate.open_total, gate.waiting_total) == (1, 1)
    assert gate.admit("10.0.0.1") is None  # its place, per address and in total
    assert gate.admit("10.0.0.1") is not None


def test_the_counts_go_back_to_zero():
    gate = Gate(Caps(max_per_address=2, max_waiting_per_address=1))
    for round_ in range(3):  # the same caps hold every round: nothing leaks
        admitted(gate, "10.0.0.1", 1)
        gate.seated("10.0.0.1")
        admitted(gate, "10.0.0.1", 1)
        assert gate.admit("10.0.0.1") is not None, round_
        gate.left("10.0.0.1", seated=True)
        gate.left("10.0.0.1", seated=False)
        assert (gate.open_total, gate.waiting_total) == (0, 0)


# -- behind a trusted proxy ---------------------------------------------------------------


def test_a_proxys_connections_count_under_their_own_cap_until_readdressed():
    gate = Gate(Caps(max_per_address=2, max_waiting_per_address=2, max_per_proxy=4))
    admitted(gate, "10.9.9.9", 4, proxy=True)  # more than one address may hold
    status, sentence = gate.admit("10.9.9.9", proxy=True)
    assert status == HTTPStatus.SERVICE_UNAVAILABLE
    assert sentence == "Conexões demais através do proxy (limite 4)."
    assert (gate.open_total, gate.waiting_total) == (4, 4)


def test_readdress_moves_a_connection_to_its_clients_address_under_that_addresss_caps():
    gate = Gate(Caps(max_per_address=2, max_waiting_per_address=2, max_per_proxy=10))
    admitted(gate, "10.9.9.9", 3, proxy=True)
    assert gate.readdress("10.9.9.9", "203.0.113.5") is None
    assert gate.readdress("10.9.9.9", "203.0.113.5") is None
    status, _ = gate.readdress("10.9.9.9", "203.0.113.5")  # a third from one client
    assert status == HTTPStatus.TOO_MANY_REQUESTS
    assert (gate.open_total, gate.waiting_total) == (3, 3)  # the totals did not move
    # The client's two count as its own: one more straight from it is refused too.
    assert gate.admit("203.0.113.5") is not None
    # The refused one stayed under the proxy, which gets its place back when it leaves.
    gate.left("10.9.9.9", seated=False)
    admitted(gate, "10.9.9.9", 10, proxy=True)  # its cap, whole again
    assert gate.admit("10.9.9.9", proxy=True) is not None


def test_readdress_to_the_same_address_changes_nothing():
    gate = Gate(Caps(max_per_address=1, max_waiting_per_address=1))
    admitted(gate, "10.0.0.1", 1)
    assert gate.readdress("10.0.0.1", "10.0.0.1") is None
    assert (gate.open_total, gate.waiting_total) == (1, 1)
