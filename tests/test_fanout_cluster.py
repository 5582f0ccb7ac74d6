"""The two-node fan-out benchmark's checks: its order accounting can fail, and both stacks pass
the loss check on real processes around a real Valkey.

Only behaviour is asserted (every delivery once; one order for our nodes); the speeds
are the benchmark's business (``python -m benchmarks.chat_fanout_cluster``).
"""

import asyncio

import pytest

from benchmarks.chat_fanout_cluster import Params, run_one, summarize, targets
from benchmarks.fanout.loadgen import ClusterSession, Run


def _server_frame(seq):
    payload = b'{"type":"message","text":"~%09d"}' % seq
    return bytes([0x81, len(payload)]) + payload


def _receive(session, *seqs):
    data = b"".join(_server_frame(s) for s in seqs)
    session.run.buffer[: len(data)] = data
    session.feed(len(data), now=0)


async def _orders():
    run = Run("wslab", "127.0.0.1", [1, 2], sessions=4, window=1, text_bytes=16, cluster=True)
    run.sent_ns, run.remaining = [0] * 6, [4] * 6
    run.sessions = [ClusterSession(run, i) for i in range(4)]
    for s in run.sessions:
        s.upgraded = True
    assert [s.port for s in run.sessions] == [1, 2, 1, 2]  # the sessions split across the nodes
    a, b, c, d = run.sessions
    _receive(a, 0, 1, 2, 3, 4, 5)  # the order sent
    _receive(b, 1, 0, 3, 2, 5, 4)  # the two senders interleaved otherwise: legal
    _receive(c, 1, 0, 3, 2, 5, 4)
    assert (a.gaps, a.repeats, b.gaps, b.repeats, b.reordered) == (0, 0, 0, 0, 0)
    assert a.fingerprint() != b.fingerprint() == c.fingerprint()
    _receive(d, 0, 3, 2)  # sender 1's 3 before its 1: 1 counted lost...
    assert (d.gaps, d.reordered) == (1, 0)
    _receive(d, 1)  # ...until it comes, late
    assert (d.gaps, d.reordered, d.repeats) == (0, 1, 0)
    _receive(d, 2)  # a second copy
    assert d.repeats == 1
    assert run.orders() == {"orders": 3, "sessions_off_order": 2, "reordered": 1}
    assert run.remaining == [0, 0, 0, 0, 1, 1]  # d never got 4 and 5


def test_the_order_check_tells_interleavings_reorders_and_repeats_apart():
    asyncio.run(_orders())


def test_the_target_follows_the_figures():
    def row(layout, rate):
        return {
            "layout": layout,
            "sessions": 1000,
            "deliveries_per_s": rate,
            "bound": "server",
            "suspect": False,
        }

    (check,) = targets([row("wslab-2", 2900.0), row("socketio-2", 1000.0)])
    assert not check["met"] and check["ratio"] == pytest.approx(2.9)
    (check,) = targets([row("wslab-2", 3000.0), row("socketio-2", 1000.0)])
    assert check["met"] and check["at_target_sessions"]


@pytest.mark.parametrize("layout", ["wslab-2", "socketio-2"])
def test_both_stacks_deliver_every_message_once_across_two_nodes(layout, valkey):
    params = Params(sizes=(10,), repeats=1, window_deliveries=100, warmup=0.1, duration=0.3)
    run = run_one(layout, 10, params, valkey)
    assert run["nodes"] == 2 and len(run["node_cpu"]) == 2
    assert run["messages_sent"] > 0 and run["messages_complete"] == run["messages_sent"]
    assert run["loss"] == 0 and run["sessions_closed"] == 0 and run["deliveries"] > 0
    if layout == "wslab-2":  # the Redis stream's order, on both nodes
        assert run["orders"] == 1 and run["reordered"] == 0
    (row,) = summarize([run])
    assert row["layout"] == layout and row["loss"] == 0
