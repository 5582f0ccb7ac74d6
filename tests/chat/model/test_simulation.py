"""The notebook's seeded fault-injection run (wslab.chat.model.simulation): no violation,
deterministic, and its checker catches a broken hub."""

from __future__ import annotations

import pytest

from wslab.chat import ChatModel
from wslab.chat.model.simulation import run_fault_injection
from wslab.chat.rules.hub import Hub


def test_fault_injection_run_has_no_violation_and_is_deterministic():
    first = run_fault_injection(seed=7, operations=3_000, retention=60, restart_every=800)
    assert first == run_fault_injection(seed=7, operations=3_000, retention=60, restart_every=800)
    assert first.violations == 0, first.examples
    # the run exercises what it claims to: gaps, recoveries, replays, refusals, errors
    assert first.gaps_announced > 0 and first.resumes_recovered > 0
    assert first.replays > 0 and first.live > 0
    assert first.auth_refusals > 0 and first.errors > 0 and first.private_messages > 0


class _LeakyHub(Hub):
    """Sends private messages to everyone: the checker must notice."""

    def recipients(self, message):
        return tuple(self._live.values())


class _ForgetfulHub(Hub):
    """Claims recovered=True even when history lost messages."""

    def plan(self, user, recovery):
        _, _, replay = super().plan(user, recovery)
        return recovery.point is not None, None, replay


class _LeakyModel(ChatModel):
    hub_class = _LeakyHub


class _ForgetfulModel(ChatModel):
    hub_class = _ForgetfulHub


@pytest.mark.parametrize("broken", [_LeakyModel, _ForgetfulModel])
def test_fault_injection_checker_catches_a_broken_router(broken):
    summary = run_fault_injection(seed=7, operations=3_000, retention=60, router_cls=broken)
    assert summary.violations > 0
