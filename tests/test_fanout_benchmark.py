"""The fan-out benchmark's harness: its loss accounting can fail, and each server passes it.

Only behaviour is asserted here (every message reaches every session once, in order);
the speeds are the benchmark's business (``python -m benchmarks.chat_fanout``).
"""

import asyncio

import pytest

from benchmarks.chat_fanout import Params, run_one
from benchmarks.fanout import SERVER_KINDS
from benchmarks.fanout.loadgen import Run, Session


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


@pytest.mark.parametrize("kind", SERVER_KINDS)
def test_every_server_delivers_every_message_once_in_order(kind):
    params = Params(sizes=(10,), repeats=1, window_deliveries=100, warmup=0.1, duration=0.3)
    run = run_one(kind, 10, params)
    assert run["messages_sent"] > 0
    assert run["messages_complete"] == run["messages_sent"]
    assert (run["missing_deliveries"], run["gaps"], run["repeats"]) == (0, 0, 0)
    assert run["sessions_closed"] == 0 and run["unexpected_frames"] == 0
    assert run["deliveries"] > 0 and run["frame_bytes"] > 0
