"""The Valkey with replicas and Sentinels that the project starts (wslab.chat.testing.
sentinel): it starts settled and configured as the chat's guarantees need, names its
primary, and stops every process it started."""

from __future__ import annotations

import os

import redis

from wslab.chat.testing import ValkeyHA


def _config(server, name):
    with redis.Redis(host=server.host, port=server.port, decode_responses=True) as client:
        return client.config_get(name)[name]


def test_it_starts_settled_configured_and_stops_everything(tmp_path):
    with ValkeyHA(tmp_path / "ha") as topology:
        primary = topology.primary()
        assert primary is topology.servers[0]
        assert topology.replicas_of(primary) == 2
        for server in topology.servers:
            assert _config(server, "appendfsync") == "always"
            assert _config(server, "min-replicas-to-write") == "1"
        for sentinel in topology.sentinels:
            view = sentinel.view()
            assert (view["num-slaves"], view["num-other-sentinels"], view["quorum"]) == (
                "2",
                "2",
                "2",
            )
        flags = topology.sentinel_flags
        assert flags.count("--redis-sentinel") == 3 and flags[-2:] == ["--redis-service", "wslab"]
        pids = [p.pid for p in (*topology.servers, *topology.sentinels)]
    for pid in pids:
        assert not os.path.exists(f"/proc/{pid}") or _zombie(pid)


def _zombie(pid: int) -> bool:
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().rsplit(")", 1)[1].split()[0] == "Z"
