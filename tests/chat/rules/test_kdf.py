"""Stored secrets (wslab.chat.rules.kdf): salted scrypt records that verify with their own cost."""

import base64

import pytest

from wslab.chat.rules.kdf import CHEAP, SCRYPT, Scrypt


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


def test_a_record_of_another_scheme_is_refused():
    with pytest.raises(ValueError, match="not a scrypt record"):
        Scrypt.verify("s", "pbkdf2$1$2$3$x$y")
