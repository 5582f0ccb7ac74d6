"""Stored secrets (wslab.chat.rules.kdf): salted scrypt records that verify with their own cost."""

import asyncio
import base64

import pytest

from wslab.chat.errors import CloseCode, Refusal, StoreError
from wslab.chat.node import ChatNode
from wslab.chat.rules.kdf import CHEAP, SCRYPT, BadRecord, Scrypt
from wslab.chat.stores.memory import MemoryCredentials, MemoryLog


def test_a_record_keeps_no_trace_of_the_secret_and_verifies_it():
    record = CHEAP.hash("hunter2-very-secret")
    scheme, n, r, p, salt, digest = record.split("$")
    assert (scheme, int(n), int(r), int(p)) == ("scrypt", CHEAP.n, CHEAP.r, CHEAP.p)
    assert "hunter2" not in record
    assert len(base64.b64decode(salt)) == 16 and len(base64.b64decode(digest)) == 32
    assert Scrypt.verify("hunter2-very-secret", record)
    assert not Scrypt.verify("hunter2-very-secreT", record)


def test_every_record_gets_its_own_salt():
    records = {CHEAP.hash("same") for _ in range(20)}
    assert len(records) == 20
    assert all(Scrypt.verify("same", r) for r in records)


def test_a_record_verifies_with_the_cost_it_was_made_with():
    stronger = Scrypt(n=2**10, r=8, p=1)
    record = stronger.hash("s")
    assert record.startswith("scrypt$1024$8$1$") and CHEAP.verify("s", record)


def test_the_default_cost_is_the_production_one():
    assert (SCRYPT.n, SCRYPT.r, SCRYPT.p) == (2**14, 8, 1)
    assert SCRYPT.memory == 16 * 2**20


@pytest.mark.parametrize("cost", [dict(n=3), dict(n=1), dict(r=0), dict(p=0)])
def test_bad_costs_are_refused(cost):
    with pytest.raises(ValueError):
        Scrypt(**cost)


@pytest.mark.parametrize(
    "record",
    [
        "pbkdf2$1$2$3$x$y",  # another scheme
        "scrypt$2$1$1$AAAA",  # a field missing
        "scrypt$3$1$1$AAAA$AAAA",  # a cost scrypt refuses
        "scrypt$two$1$1$AAAA$AAAA",  # not a number
        "scrypt$2$1$1$A*A$AAAA",  # a salt that is not base64
        "",
    ],
)
def test_a_corrupt_record_is_a_store_error_with_a_sentence(record):
    with pytest.raises(BadRecord, match="corrompida no armazenamento") as caught:
        Scrypt.verify("s", record)
    assert isinstance(caught.value, StoreError) and isinstance(caught.value, ValueError)


def test_a_login_that_meets_a_corrupt_record_is_refused_with_its_sentence():
    credentials = MemoryCredentials()
    node = ChatNode(MemoryLog(epoch="e"), credentials, kdf=CHEAP, offload=None)

    async def login() -> None:
        assert await credentials.register("ana", "ana", "scrypt$2$1$1$not*base64$AAAA") is None
        await node.open("ana", "pw", object())

    with pytest.raises(Refusal, match="corrompida no armazenamento") as caught:
        asyncio.run(login())
    assert caught.value.close_code == CloseCode.SERVICE_RESTART
    assert len(node.hub) == 0  # nothing opened
