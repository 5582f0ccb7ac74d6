"""The pool that runs the KDF (wslab.chat.node.kdfpool) in the order of its waiting line."""

import asyncio
import threading

import pytest

from wslab.chat.node.kdfpool import Busy, KdfPool
from wslab.chat.rules.logins import LoginQueue, Tier


def drain(queue: LoginQueue) -> list:
    out = []
    while (ticket := queue.pop()) is not None:
        out.append(ticket)
    return out


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
