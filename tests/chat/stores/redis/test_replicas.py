"""What counts as confirmed on the replicas (wslab.chat.stores.redis.replicas): the
judgement of WAIT, WAITAOF and ROLE replies, and a real Valkey with no replica, where
no write is ever confirmed."""

from __future__ import annotations

import pytest
from chatclient import run

from wslab.chat.stores.redis.client import connect
from wslab.chat.stores.redis.replicas import Replicas

TWO = ["master", 100, [["127.0.0.1", "7001", "100"], ["127.0.0.1", "7002", "100"]]]
ONE = ["master", 100, [["127.0.0.1", "7001", "100"]]]


def test_every_attached_replica_received_and_one_has_it_on_disk():
    replicas = Replicas(required=True)
    assert replicas.confirmed(2, 2, [1, 1], TWO)
    assert replicas.attached == 2


@pytest.mark.parametrize(
    ("asked", "received", "on_disk", "role", "why"),
    [
        (2, 1, [1, 1], TWO, "one attached replica did not receive it"),
        (2, 2, [1, 0], TWO, "on no replica's disk"),
        (2, 2, [0, 2], TWO, "not on the primary's disk"),
        (1, 0, [1, 0], ["master", 100, []], "no replica at all"),
        (1, 1, [1, 1], ["slave", "127.0.0.1", 7000, "connected", 100], "not a primary"),
        (2, TimeoutError("lost"), [1, 1], TWO, "the WAIT failed"),
    ],
)
def test_what_is_not_confirmed(asked, received, on_disk, role, why):
    assert not Replicas(required=True).confirmed(asked, received, on_disk, role), why


def test_a_replica_that_died_during_the_wait_is_no_longer_needed():
    """Asked for two, one died meanwhile (ROLE names one): the one left suffices, and
    the next write asks for one."""
    replicas = Replicas(required=True)
    assert replicas.confirmed(2, 1, [1, 1], ONE)
    assert replicas.attached == 1


def test_a_replica_that_attached_after_the_write_is_not_needed():
    replicas = Replicas(required=True)
    assert replicas.confirmed(1, 1, [1, 1], TWO)
    assert replicas.attached == 2


def test_without_a_replica_a_real_write_is_never_confirmed(valkey_url):
    async def body():
        client = connect(valkey_url, retries=0)
        try:
            reply, confirmed = await Replicas(required=True).confirm(client, ("SET", "k", "v"))
            not_required = await Replicas(required=False).confirm(client, ("SET", "k", "w"))
        finally:
            await client.aclose()
        assert reply is True and not confirmed
        assert not_required == (True, True)  # one server: its own AOF is the guarantee

    run(body())
