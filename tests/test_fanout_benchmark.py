"""The fan-out benchmark's harness: its loss accounting can fail, and each server passes it.

Only behaviour is asserted here (every message reaches every session once, in order;
the verdicts follow the figures); the speeds are the benchmark's business
(``python -m benchmarks.chat_fanout``).
"""

import asyncio

import pytest

from benchmarks.chat_fanout import (
    MEMORY_TARGET_BYTES,
    Params,
    run_one,
    target_lines,
    targets,
)
from benchmarks.fanout import ALL_KINDS, NODE_KINDS
from benchmarks.fanout.loadgen import Run, Session
from benchmarks.fanout.machine import bound_by
from benchmarks.fanout.record import RunRecord
from benchmarks.fanout.servers import install_node_peer


def _server_frame(seq):
    payload = b'{"type":"message","text":"~%09d"}' % seq
    return bytes([0x81, len(payload)]) + payload


def _feed(session, data):
    session.run.buffer[: len(data)] = data
    session.feed(len(data), now=0)


def _receiver(run):
    session = Session(run, 1)
    session.upgraded = True
    return session


async def _accounting():
    run = Run("wslab", "127.0.0.1", 1, sessions=2, window=1, text_bytes=16)
    run.sent_ns, run.remaining = [0, 0, 0], [1, 1, 1]  # one receiver left per message
    session = _receiver(run)
    first = _server_frame(0)
    _feed(session, first[:5])  # a frame cut across two reads
    assert session.expect == 0 and run.done == 0
    _feed(session, first[5:] + _server_frame(2))  # message 1 never comes
    assert (session.expect, session.gaps, session.repeats) == (3, 1, 0)
    assert run.remaining == [0, 0, 0] and run.done == 3  # the lost one frees its slot
    _feed(session, _server_frame(2))
    assert session.repeats == 1


def test_the_load_generator_counts_gaps_and_repeats():
    asyncio.run(_accounting())


def _row(server, sessions, rate, idle_per_session=None, suspect=False):
    return {
        "server": server,
        "sessions": sessions,
        "deliveries_per_s": rate,
        "bound": "server",
        "suspect": suspect,
        "rss_idle_per_session": idle_per_session,
    }


def test_targets_follow_the_figures():
    summary = [
        _row("wslab", 1000, 1300.0, MEMORY_TARGET_BYTES + 1),
        _row("bare", 1000, 1000.0),
        _row("socketio-node", 1000, 1400.0, suspect=True),
        _row("wslab", 10000, 500.0, MEMORY_TARGET_BYTES) | {"rss_added_per_session": 17 * 1024},
    ]
    checks = {(c["sessions"], c["reference"]): c for c in targets(summary)}
    assert set(checks) == {(1000, "bare"), (1000, "socketio-node"), (1000, None), (10000, None)}
    assert checks[1000, "bare"]["met"] and checks[1000, "bare"]["ratio"] == pytest.approx(1.3)
    node = checks[1000, "socketio-node"]
    assert not node["met"] and node["shortfall"] == pytest.approx(1 - 1300 / 1400)
    assert node["suspect"] and not checks[1000, "bare"]["suspect"]  # measured beside other work
    assert not checks[1000, None]["met"] and checks[10000, None]["met"]
    # what one more session adds is reported beside the RSS / N, not judged
    assert checks[10000, None]["added"] == 17 * 1024 and checks[1000, None]["added"] is None
    memory = [line for line in target_lines(targets(summary)) if "memory" in line]
    assert "added per session (RSS growth / N): 17.0 KiB" in memory[1]
    assert "added" not in memory[0]


def test_bound_names_the_saturated_process():
    assert bound_by(0.99, 0.5) == "server"
    assert bound_by(0.5, 0.95) == "loadgen"
    assert bound_by(0.95, 0.95) == "both"
    assert bound_by(None, 0.2) == "neither"


@pytest.mark.parametrize("kind", ALL_KINDS)
def test_every_server_delivers_every_message_once_in_order(kind):
    if kind in NODE_KINDS:
        reason = install_node_peer()
        if reason is not None:
            pytest.skip(f"{kind}: {reason}")
    params = Params(sizes=(10,), repeats=1, window_deliveries=100, warmup=0.1, duration=0.3)
    run = run_one(kind, 10, params)
    assert isinstance(run, RunRecord) and RunRecord.from_json(run.to_json()) == run
    assert run.loop == ("node (libuv)" if kind in NODE_KINDS else params.loop)
    assert run.messages_sent > 0
    assert run.messages_complete == run.messages_sent
    assert (run.missing_deliveries, run.gaps, run.repeats) == (0, 0, 0)
    assert run.sessions_closed == 0 and run.unexpected_frames == 0
    assert run.deliveries > 0 and run.frame_bytes > 0
    assert 0 < run.rss_base_bytes <= run.rss_peak_bytes


def test_python_servers_also_run_on_asyncios_own_loop():
    params = Params(
        sizes=(10,), repeats=1, window_deliveries=100, warmup=0.1, duration=0.3, loop="asyncio"
    )
    run = run_one("wslab", 10, params)
    assert run.loop == "asyncio" and run.loss == 0 and run.messages_complete == run.messages_sent
