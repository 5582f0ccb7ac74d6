"""The node's metrics (wslab.chat.net.metrics), read back with prometheus_client's own
parser; the endpoint of a running node is tested in tests/chat/test_production.py."""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families

from wslab.chat.net.metrics import REFUSALS, Metrics


def samples(metrics: Metrics) -> dict[tuple[str, tuple], float]:
    text = metrics.render().decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_counts_read_back_through_the_prometheus_parser():
    metrics = Metrics()
    state = {"sessions": 3}
    metrics.watch(sessions=lambda: state["sessions"], draining=lambda: 0)
    metrics.stored.labels("public").inc()
    metrics.stored.labels("public").inc()
    metrics.stored.labels("private").inc()
    metrics.delivered.inc(40)
    metrics.refused("per-address")
    metrics.closed(1012)
    metrics.closed(None)
    metrics.closed(3999)  # any code a client sends counts as "other"
    metrics.store_seconds.observe(0.003)
    state["sessions"] = 5  # gauges are read when scraped
    found = samples(metrics)
    assert found[("wslab_chat_messages_stored_total", (("kind", "public"),))] == 2
    assert found[("wslab_chat_messages_stored_total", (("kind", "private"),))] == 1
    assert found[("wslab_chat_deliveries_total", ())] == 40
    assert found[("wslab_chat_refusals_total", (("reason", "per-address"),))] == 1
    assert found[("wslab_chat_refusals_total", (("reason", "hello"),))] == 0
    assert found[("wslab_chat_closes_total", (("code", "1012"),))] == 1
    assert found[("wslab_chat_closes_total", (("code", "1006"),))] == 1
    assert found[("wslab_chat_closes_total", (("code", "other"),))] == 1
    assert found[("wslab_chat_store_append_seconds_count", ())] == 1
    assert found[("wslab_chat_store_append_seconds_bucket", (("le", "0.005"),))] == 1
    assert found[("wslab_chat_store_append_seconds_bucket", (("le", "0.001"),))] == 0
    assert found[("wslab_chat_sessions", ())] == 5
    assert found[("wslab_chat_draining", ())] == 0


def test_labels_stay_in_their_fixed_sets():
    metrics = Metrics()
    with pytest.raises(ValueError):
        metrics.refused("anything a client wrote")
    for code in range(1000, 5000):
        metrics.closed(code)
    closes = [key for key in samples(metrics) if key[0] == "wslab_chat_closes_total"]
    assert len(closes) <= 16
    reasons = {dict(key[1])["reason"] for key in samples(metrics) if "refusals" in key[0]}
    assert reasons == set(REFUSALS)


def test_two_nodes_in_one_process_count_apart():
    one, other = Metrics(), Metrics()
    one.delivered.inc(7)
    assert samples(other)[("wslab_chat_deliveries_total", ())] == 0


def test_off_counts_nothing_and_renders_nothing():
    metrics = Metrics(enabled=False)
    metrics.watch(sessions=lambda: 1)
    metrics.stored.labels("public").inc()
    metrics.refused("full")
    metrics.closed(1000)
    assert metrics.render() == b""
