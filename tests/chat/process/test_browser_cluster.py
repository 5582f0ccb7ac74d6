"""The browser client on a chat of two nodes (two ``serve --redis --node`` processes and
one Valkey), in Chromium: a tab whose node is killed with SIGKILL carries on from the
other node, with what it missed, each message once.

Reuses the ``browser`` and ``open_tab_at`` fixtures of tests/chat/process/test_browser.py
(skipped, or failed under ``WSLAB_REQUIRE_BROWSER=1``, without Chromium).
"""

from __future__ import annotations

import json
import signal

import pytest
from chatclient import WAIT
from test_browser import RECONNECT_TIMEOUT_MS, browser, open_tab_at  # noqa: F401
from test_cluster import _start

from wslab.chat.testing.valkey import free_port


@pytest.fixture
def cluster(valkey_url):
    """Two nodes that name each other as peers: [(process, page url, ws url), ...]."""
    ports = [free_port(), free_port()]
    started = []
    try:
        for port, other in (ports, ports[::-1]):
            process, ws_url = _start(
                valkey_url, "--port", str(port), "--node", f"http://127.0.0.1:{other}"
            )
            started.append((process, f"http://127.0.0.1:{port}/", ws_url))
        yield started
    finally:
        for process, _, _ in started:
            process.kill()
            process.wait(timeout=WAIT)


def test_a_tab_whose_node_is_killed_carries_on_from_the_other_node(cluster, open_tab_at):  # noqa: F811
    from playwright.sync_api import expect

    (process_a, page_a, ws_a), (_, page_b, ws_b) = cluster
    ana = open_tab_at(page_a, "ana", "segredo-ana")
    joao = open_tab_at(page_b, "joao", "segredo-joao")
    assert ana.status.get_attribute("data-node") == ws_a
    joao.send("antes da queda")
    ana.wait_offset(1)
    joao.wait_offset(1)

    # Keep ana's tab offline while A dies and joao writes, so that she really misses it.
    ana.page.context.set_offline(True)
    process_a.send_signal(signal.SIGKILL)
    process_a.wait(timeout=WAIT)
    expect(ana.status).to_have_attribute("data-state", "reconnecting")
    joao.send("/msg ana enquanto A caía")
    joao.send("público enquanto A caía")
    joao.wait_offset(3)
    assert ana.offsets() == [1]

    ana.page.context.set_offline(False)
    ana.wait_connected(timeout=RECONNECT_TIMEOUT_MS)
    assert ana.status.get_attribute("data-node") == ws_b
    ana.wait_offset(3)
    hellos = [json.loads(frame) for frame in ana.sent if '"hello"' in frame]
    epoch = ana.messages()[0]["epoch"]
    assert hellos[0]["resume"] is None
    assert {json.dumps(h["resume"]) for h in hellos[1:]} == {
        json.dumps({"epoch": epoch, "offset": 1})
    }  # every retry, on either node, resumes from the same point
    messages = ana.messages()
    assert [(m["offset"], m["text"], m["replayed"]) for m in messages] == [
        (1, "antes da queda", False),
        (2, "enquanto A caía", True),
        (3, "público enquanto A caía", True),
    ]
    assert all(m["epoch"] == epoch for m in messages)
    # Recovered: no notice of a new epoch or of a gap.
    expect(ana.page.locator("#messages li[data-kind='system']")).to_have_count(0)

    # Live again on B, both ways: each message once.
    joao.send("depois da queda")
    ana.send("/msg joao voltei por B")
    ana.wait_offset(5)
    joao.wait_offset(5)
    assert ana.offsets() == [1, 2, 3, 4, 5]
    assert joao.offsets() == [1, 2, 3, 4, 5]
    assert [m["replayed"] for m in ana.messages()[3:]] == [False, False]
    assert joao.messages()[-1]["text"] == "voltei por B"
