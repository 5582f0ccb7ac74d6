"""Several nodes over one Redis, as real processes: one Valkey (per module) and two
``python -m wslab.chat serve --redis`` nodes per test. Message across nodes, ``/who``
across nodes, shared registration, SIGKILL failover with an exact resume, presence
expiry, Redis restarted with and without its data."""

import contextlib
import json
import signal
import time

import pytest
from chatclient import WAIT, closed_with, hello, nothing_more, receive, say, serve_process

TTL = 2.0  # --presence-ttl: a killed node's users leave /who within this (plus a beat)


def _start(url, *options):
    """A node on ``url``: (process, ws url); ``options`` are more ``serve`` options."""
    return serve_process("--redis", url, "--presence-ttl", str(TTL), *options)


@contextlib.contextmanager
def two_nodes(url, *options):
    """Two nodes on ``url`` with more ``serve`` options: [(process, ws url), ...],
    killed on exit."""
    started = []
    try:
        for _ in range(2):
            started.append(_start(url, *options))
        yield started
    finally:
        for process, _ in started:
            process.kill()
            process.wait(timeout=WAIT)


@pytest.fixture
def nodes(valkey_url):
    """Two nodes on the module's (flushed) Valkey."""
    with two_nodes(valkey_url) as started:
        yield started


def who(ws, until, within=4 * TTL):
    """Ask /who until ``until(names)`` holds (presence is published every TTL/5 s)."""
    deadline = time.monotonic() + within
    while True:
        say(ws, "/who")
        reply = receive(ws)
        assert reply["type"] == "system", reply
        names = reply["text"].removeprefix("Online agora: ").rstrip(".").split(", ")
        if until(names) or time.monotonic() > deadline:
            return names
        time.sleep(0.1)


def test_delivery_who_and_registration_across_nodes(nodes, opened):
    (_, a), (_, b) = nodes
    ana, bia = opened(a), opened(a)
    joao, ana_b = opened(b), opened(b)
    hello(ana, "ana")
    hello(bia, "bia")
    hello(joao, "joao")
    hello(ana_b, "ana")  # the same user, a second session on the other node
    say(ana, "oi de A")
    got = [receive(ws) for ws in (ana, bia, joao, ana_b)]
    assert {(m["kind"], m["from"], m["text"], m["offset"]) for m in got} == {
        ("public", "ana", "oi de A", 1)
    }
    say(joao, "/msg ana só pra você")
    for ws in (joao, ana, ana_b):
        message = receive(ws)
        assert (message["kind"], message["from"], message["to"], message["offset"]) == (
            "private",
            "joao",
            "ana",
            2,
        )
    assert nothing_more(bia)
    names = who(joao, lambda names: names == ["ana", "bia", "joao"])
    assert names == ["ana", "bia", "joao"]
    intruder = opened(b)
    intruder.send(json.dumps({"type": "hello", "user": "bia", "secret": "outro"}))
    assert closed_with(intruder)[0] == 4001  # registered on A, refused on B


def test_a_join_and_a_leave_reach_who_on_the_other_node_before_the_next_beat(valkey_url, opened):
    with two_nodes(valkey_url, "--presence-ttl", "60") as started:  # a beat every 12 s
        (_, a), (_, b) = started
        joao = opened(b)
        hello(joao, "joao")
        ana = opened(a)
        hello(ana, "ana")
        assert who(joao, lambda names: "ana" in names, within=2.0) == ["ana", "joao"]
        ana.close()
        assert who(joao, lambda names: "ana" not in names, within=2.0) == ["joao"]


def test_sigkill_failover_resumes_exactly_on_the_other_node(nodes, opened):
    (process_a, a), (_, b) = nodes
    ana, joao = opened(a), opened(b)
    welcome = hello(ana, "ana")
    hello(joao, "joao")
    say(joao, "antes")
    seen = receive(ana)["offset"]
    receive(joao)
    process_a.send_signal(signal.SIGKILL)
    process_a.wait(timeout=WAIT)
    say(joao, "/msg ana enquanto A morria")
    say(joao, "público enquanto A morria")
    receive(joao), receive(joao)
    back_on_b = opened(b)
    back = hello(back_on_b, "ana", resume={"epoch": welcome["epoch"], "offset": seen})
    assert back["recovered"] is True and back["epoch"] == welcome["epoch"]
    got = [receive(back_on_b), receive(back_on_b)]
    assert [(m["offset"], m["text"], m.get("replayed")) for m in got] == [
        (seen + 1, "enquanto A morria", True),
        (seen + 2, "público enquanto A morria", True),
    ]
    assert nothing_more(back_on_b)


def test_the_users_of_a_killed_node_leave_who(nodes, opened):
    (process_a, a), (_, b) = nodes
    ana, joao = opened(a), opened(b)
    hello(ana, "ana")
    hello(joao, "joao")
    assert who(joao, lambda names: "ana" in names) == ["ana", "joao"]
    process_a.send_signal(signal.SIGKILL)
    process_a.wait(timeout=WAIT)
    killed = time.monotonic()
    assert who(joao, lambda names: names == ["joao"], within=6 * WAIT) == ["joao"]
    assert time.monotonic() - killed < TTL + 2  # the TTL, not some other timer


def test_redis_restarted_with_its_data_keeps_the_chat_going(nodes, opened, valkey):
    (_, a), (_, b) = nodes
    ana, joao = opened(a), opened(b)
    welcome = hello(ana, "ana")
    hello(joao, "joao")
    say(joao, "antes")
    assert receive(ana)["offset"] == 1
    receive(joao)
    valkey.restart(keep_data=True)
    for ws in (ana, joao):  # each node's follower lost its connection, then got it back
        texts = [json.loads(ws.recv(timeout=4 * WAIT))["text"] for _ in range(2)]
        assert "perdeu o contato" in texts[0] and "restabelecido" in texts[1], texts
    say(joao, "depois")
    reply = receive(joao)
    assert (reply["offset"], reply["text"]) == (2, "depois")
    message = receive(ana)
    assert (message["offset"], message["text"]) == (2, "depois")
    again = opened(b)
    back = hello(again, "ana", resume={"epoch": welcome["epoch"], "offset": 0})
    assert back["recovered"] is True and back["epoch"] == welcome["epoch"]


def next_message(ws):
    """The next chat message of ``ws``, past any system notice (the outage notices)."""
    while True:
        frame = receive(ws)
        if frame["type"] != "system":
            return frame


def test_redis_unreachable_tells_open_sessions_refuses_new_ones_and_stores_nothing(
    nodes, opened, valkey
):
    (_, a), (_, b) = nodes
    ana, joao = opened(a), opened(b)
    welcome = hello(ana, "ana")
    hello(joao, "joao")
    say(joao, "antes")
    assert receive(ana)["offset"] == receive(joao)["offset"] == 1
    valkey.kill()
    try:
        for ws in (ana, joao):  # every open session, on both nodes, is told
            notice = receive(ws)
            assert notice["type"] == "system" and "perdeu o contato" in notice["text"], notice
        say(joao, "no escuro")
        reply = receive(joao)
        assert reply["type"] == "error" and "não foi confirmada" in reply["text"], reply
        assert nothing_more(ana, within=0.5)  # nothing echoed, nothing delivered
        late = opened(b)
        late.send(json.dumps({"type": "hello", "user": "maria", "secret": "s", "resume": None}))
        code, reason = closed_with(late)
        assert code == 1012 and "Redis" in reason, (code, reason)
    finally:
        valkey.start()
    for ws in (ana, joao):  # the followers retry with a backoff of at most 2 s
        notice = json.loads(ws.recv(timeout=4 * WAIT))
        assert notice["type"] == "system" and "restabelecido" in notice["text"], notice
    say(joao, "de volta")
    echo = next_message(joao)
    assert (echo["offset"], echo["text"]) == (2, "de volta")  # "no escuro" was never stored
    assert next_message(ana)["offset"] == 2
    assert hello(opened(a), "ana")["epoch"] == welcome["epoch"]  # Redis kept its data


def test_redis_back_empty_is_a_new_epoch_and_a_resume_is_not_recovered(nodes, opened, valkey):
    (_, a), (_, b) = nodes
    ana = opened(a)
    welcome = hello(ana, "ana")
    say(ana, "perdida")
    seen = receive(ana)["offset"]
    valkey.restart(keep_data=False)
    deadline = time.monotonic() + 4 * WAIT
    while True:
        again = opened(b)
        try:
            back = hello(again, "ana", resume={"epoch": welcome["epoch"], "offset": seen})
        except Exception:  # refused while the node learns the new epoch: retry
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
            continue
        if back["epoch"] != welcome["epoch"] or time.monotonic() > deadline:
            break
        again.close()
        time.sleep(0.2)
    assert back["recovered"] is False and back["epoch"] != welcome["epoch"]
    notice = receive(again)
    assert notice["type"] == "system" and "época" in notice["text"]


def closed_within(ws, within):
    """The close code and reason of ``ws``, skipping frames, waiting at most ``within`` s."""
    from websockets.exceptions import ConnectionClosed

    deadline = time.monotonic() + within
    while True:
        try:
            ws.recv(timeout=max(0.01, deadline - time.monotonic()))
        except ConnectionClosed as closed:
            return (
                closed.rcvd.code if closed.rcvd else None,
                closed.rcvd.reason if closed.rcvd else "",
            )


def test_redis_back_empty_closes_open_sessions_with_1012_and_they_resume(nodes, opened, valkey):
    (_, a), (_, b) = nodes
    ana, joao = opened(a), opened(b)
    welcome = hello(ana, "ana")
    hello(joao, "joao")
    say(joao, "perdida")
    seen = receive(ana)["offset"]
    receive(joao)
    valkey.restart(keep_data=False)
    for ws in (ana, joao):  # every open session, on both nodes
        code, reason = closed_within(ws, 6 * WAIT)
        assert code == 1012 and "reconecte" in reason, (code, reason)
    back = opened(a)
    resumed = hello(back, "ana", resume={"epoch": welcome["epoch"], "offset": seen})
    assert resumed["recovered"] is False and resumed["epoch"] != welcome["epoch"]
    notice = receive(back)
    assert notice["type"] == "system" and "época" in notice["text"]
    say(back, "de volta")
    message = next_message(back)  # past the outage's end, if the follower is that late
    assert (message["offset"], message["text"]) == (1, "de volta")  # offsets start over


def test_a_users_line_rate_holds_across_nodes(valkey_url, opened):
    with two_nodes(valkey_url, "--max-rate", "0.01", "--burst", "4") as started:
        (_, a), (_, b) = started
        on_a, on_b, joao = opened(a), opened(b), opened(a)
        hello(on_a, "ana"), hello(on_b, "ana"), hello(joao, "joao")
        for i in range(4):  # the burst, spent on node A
            say(on_a, f"a{i}")
            assert receive(joao)["text"] == f"a{i}"
        for i in range(4):  # node B's own frame budget has 4 left; the user's has none
            say(on_b, f"b{i}")
        refused = [frame for frame in (receive(on_b) for _ in range(8)) if frame["type"] == "error"]
        assert len(refused) == 4 and all("Devagar" in f["text"] for f in refused), refused
        assert nothing_more(joao, within=0.5)


def test_wrong_secrets_on_one_node_throttle_the_name_on_the_other(valkey_url, opened):
    with two_nodes(valkey_url) as started:
        (_, a), (_, b) = started
        hello(opened(a), "ana", "certo")
        for _ in range(6):  # 5 free, the 6th makes the next one wait 1 s
            ws = opened(a)
            ws.send(json.dumps({"type": "hello", "user": "ana", "secret": "x", "resume": None}))
            assert closed_with(ws)[0] == 4001
        ws = opened(b)
        ws.send(json.dumps({"type": "hello", "user": "ana", "secret": "y", "resume": None}))
        code, reason = closed_with(ws)
        assert code == 4029 and "tente de novo em" in reason, (code, reason)
