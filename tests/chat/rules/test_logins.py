"""The KDF's waiting line (wslab.chat.rules.logins): tiers first, networks in turn,
and room made at the expense of the lowest tier and the network holding the most."""

import pytest

from wslab.chat.rules.logins import LoginQueue, Tier


def drain(queue: LoginQueue) -> list:
    out = []
    while (ticket := queue.pop()) is not None:
        out.append(ticket)
    return out


def test_a_returning_login_goes_before_known_names_and_registrations():
    queue = LoginQueue(10)
    queue.push("new", Tier.NEW, "net-a")
    queue.push("known", Tier.KNOWN, "net-b")
    queue.push("owner", Tier.RETURNING, "net-c")
    assert drain(queue) == ["owner", "known", "new"]
    assert len(queue) == 0


def test_networks_take_turns_within_a_tier():
    queue = LoginQueue(10)
    for n in range(4):
        queue.push(f"bot{n}", Tier.NEW, "botnet")
    queue.push("ana", Tier.NEW, "home")
    assert drain(queue) == ["bot0", "ana", "bot1", "bot2", "bot3"]


def test_a_full_queue_refuses_a_registration_for_a_login_of_a_known_name():
    queue = LoginQueue(3)
    for n in range(3):
        assert queue.push(f"bot{n}", Tier.NEW, "botnet") is None
    assert queue.push("owner", Tier.RETURNING, "home") == "bot2"  # the newest of them
    assert queue.push("bot3", Tier.NEW, "botnet") == "bot3"  # no room for another
    assert drain(queue) == ["owner", "bot0", "bot1"]


def test_in_its_own_tier_a_newcomer_displaces_only_a_network_holding_more():
    queue = LoginQueue(3)
    for n in range(3):
        queue.push(f"bot{n}", Tier.KNOWN, "botnet")
    assert queue.push("ana", Tier.KNOWN, "home") == "bot2"
    assert queue.push("bia", Tier.KNOWN, "home") == "bia"  # botnet 2, home 1: no
    assert queue.push("late", Tier.NEW, "elsewhere") == "late"  # a lower tier never evicts
    assert drain(queue) == ["bot0", "ana", "bot1"]


def test_a_ticket_that_gives_up_leaves_its_place():
    queue = LoginQueue(4)
    queue.push("a", Tier.KNOWN, "n1")
    queue.push("b", Tier.KNOWN, "n1")
    assert queue.remove("a") and not queue.remove("a")
    assert "b" in queue and queue.waiting(Tier.KNOWN) == 1
    assert drain(queue) == ["b"]
    with pytest.raises(ValueError):
        LoginQueue(0)


# -- the pool of KDF workers that serves the queue ----------------------------------------
