"""The KDF's waiting line (wslab.chat.rules.logins): tiers first, networks in turn,
and room made at the expense of the lowest tier and the network holding the most."""

import asyncio
import threading

import pytest

from wslab.chat.kdfpool import Busy, KdfPool
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


def test_the_pool_serves_a_known_name_before_waiting_registrations():
    async def body():
        pool = KdfPool(workers=1, capacity=3, max_wait=5.0)
        gate = threading.Event()
        order = []

        def work(name):
            if name == "first":
                gate.wait(5)
            order.append(name)
            return name

        first = asyncio.ensure_future(pool.run(Tier.NEW, "botnet", work, "first"))
        await asyncio.sleep(0)
        assert pool.contended
        bots = [
            asyncio.ensure_future(pool.run(Tier.NEW, "botnet", work, f"bot{n}")) for n in range(3)
        ]
        await asyncio.sleep(0)
        owner = asyncio.ensure_future(pool.run(Tier.RETURNING, "home", work, "owner"))
        await asyncio.sleep(0)
        gate.set()
        results = await asyncio.gather(first, owner, *bots, return_exceptions=True)
        assert results[:2] == ["first", "owner"]
        assert [type(r) for r in results[2:]] == [str, str, Busy]  # the newest bot made room
        assert order == ["first", "owner", "bot0", "bot1"]
        assert pool.busy == 0 and pool.waiting == 0
        pool.close()

    asyncio.run(asyncio.wait_for(body(), 10))


def test_a_login_that_waits_too_long_is_told_busy_and_frees_its_place():
    async def body():
        pool = KdfPool(workers=1, capacity=4, max_wait=0.2)
        gate = threading.Event()
        holder = asyncio.ensure_future(pool.run(Tier.KNOWN, "a", gate.wait, 5))
        await asyncio.sleep(0)
        with pytest.raises(Busy):
            await pool.run(Tier.KNOWN, "b", lambda: "never")
        assert pool.waiting == 0
        gate.set()
        assert await holder is True
        assert await pool.run(Tier.KNOWN, "b", lambda: "now") == "now"
        assert pool.busy == 0
        pool.close()

    asyncio.run(asyncio.wait_for(body(), 10))


# -- names registered and never used again expire (issue 24) --------------------------------


def test_names_never_used_again_expire_so_the_cap_cannot_be_filled_for_good():
    from wslab.chat.errors import Refusal
    from wslab.chat.node import ChatNode, Limits
    from wslab.chat.rules.kdf import CHEAP
    from wslab.chat.stores.memory import MemoryCredentials, MemoryLog

    now = [1_000_000.0]  # the store's wall clock and the node's, moved by hand
    limits = Limits(max_users=2, unused_name_days=30, login_free=None)
    node = ChatNode(
        MemoryLog(),
        MemoryCredentials(clock=lambda: now[0]),
        kdf=CHEAP,
        limits=limits,
        offload=None,
        clock=lambda: now[0],
    )

    async def body():
        await node.start(lambda items: None)
        for name in ("ana", "bot1"):
            session, replay = await node.open(name, "s", object())
            replay.close()
            node.close(session.id)
        again, replay = await node.open("ana", "s", object())  # ana comes back: used
        replay.close()
        with pytest.raises(Refusal) as full:
            await node.open("bot2", "s", object())
        assert full.value.close_code == 4003
        now[0] += 31 * 86400  # a month later: bot1 was never used again
        session, replay = await node.open("bia", "s", object())
        replay.close()
        assert await node.credentials.lookup("bot1") is None
        assert await node.credentials.lookup("ana") is not None
        await node.stop()

    asyncio.run(asyncio.wait_for(body(), 10))
