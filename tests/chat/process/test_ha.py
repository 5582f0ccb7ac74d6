"""No single point of failure: two ``serve --redis-sentinel`` nodes over a Valkey primary,
two replicas and three Sentinels (:class:`wslab.chat.testing.ValkeyHA`, one per module),
each fault under traffic from recording clients, each with its defined outcome, and the
histories checked by the independent checker (:mod:`benchmarks.ha.checker`): nothing
acknowledged lost, nothing delivered taken back, one text per offset, no silent gap.

Every test leaves the topology healed (:meth:`ValkeyHA.heal`) and the data flushed for
the next one.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import subprocess
import sys

import pytest
import redis
from chatclient import WAIT, serve_process

from benchmarks.ha.checker import check, read_log
from benchmarks.ha.clients import Recorder, run_clients
from wslab.chat.node import STORE_DOWN_LINE
from wslab.chat.testing import ValkeyHA

USERS = ["ana", "bia", "caio", "davi", "eva", "fabio"]


@pytest.fixture(scope="module")
def ha(tmp_path_factory):
    with ValkeyHA(tmp_path_factory.mktemp("ha")) as topology:
        yield topology


def _client(server) -> redis.Redis:
    return redis.Redis(host=server.host, port=server.port, socket_timeout=5, decode_responses=True)


@pytest.fixture
def topology(ha):
    """The module's topology, every process running, settled and empty."""
    primary = ha.heal()
    with _client(primary) as client:
        client.flushall()
        client.execute_command("WAIT", len(ha.servers) - 1, 2000)
    yield ha
    ha.heal()


@contextlib.contextmanager
def nodes(topology, count=2):
    """``count`` chat nodes on the topology: their processes and ws URLs."""
    started = []
    try:
        for _ in range(count):
            started.append(serve_process(*topology.sentinel_flags, "--retention", "100000"))
        yield started
    finally:
        for process, _ in started:
            process.kill()
            process.wait(timeout=WAIT)


def recorders(urls, seed, **options):
    rng = random.Random(seed)
    return [
        Recorder(
            user, urls, USERS, random.Random(rng.random()), address=f"127.0.0.{10 + i}", **options
        )
        for i, user in enumerate(USERS)
    ]


def final_check(topology, clients):
    """The checker's report on the final log (read from the primary)."""
    with _client(topology.wait_primary()) as client:
        epoch, log = read_log(client)
    report = check(epoch, log, {c.user: c.history for c in clients})
    assert report.violations == 0, report
    assert report.acknowledged > 0 and report.delivered > report.acknowledged, report
    return report


def acks_after(clients, moment):
    """How many lines were acknowledged (own message received) after ``moment``."""
    return sum(
        1
        for c in clients
        for event in c.history
        if event[0] == "message" and event[1] > moment and event[3] == c.user
    )


def errors_after(clients, moment):
    return [e[2] for c in clients for e in c.history if e[0] == "error" and e[1] > moment]


async def acked_since(clients, moment, within=20.0):
    """Wait, at most ``within`` s, until some line is acknowledged after ``moment``
    (the service is back), then one more second of traffic."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while acks_after(clients, moment) == 0 and loop.time() < deadline:
        await asyncio.sleep(0.1)
    await asyncio.sleep(1)


async def in_thread(function, *args, **kwargs):
    """A wait in a worker thread, so the clients go on meanwhile. Never a start: a
    server started from a worker thread dies when the thread ends (PR_SET_PDEATHSIG)."""
    return await asyncio.to_thread(function, *args, **kwargs)


def test_the_shipped_client_follows_a_failover_to_the_new_primary(topology):
    """The log's own client configuration (redis-py's asyncio Sentinel, pooled): after
    the primary is SIGKILLed, the node's next append lands on the new primary."""
    from wslab.chat.stores.redis import RedisLog
    from wslab.chat.stores.redis.client import SentinelService

    async def body():
        where = SentinelService(tuple(topology.addresses), topology.service)
        log = RedisLog(where)
        seen = []
        await log.start(seen.extend)
        try:
            for text in ("a", "b"):
                await log.append("public", "ana", None, text)
            old = topology.primary()
            epoch = log.state.epoch
            topology.kill(old)
            new = await in_thread(topology.wait_failover, old)
            for _ in range(200):  # bounded: 20 s
                try:
                    offset = await log.append("public", "ana", None, "c")
                    break
                except Exception:
                    await asyncio.sleep(0.1)
            with _client(new) as client:
                entries = client.xrange("wslab:chat:log", f"{offset}-0", f"{offset}-0")
            assert offset == 3 and entries[0][1]["x"] == "c"
            for _ in range(100):
                if len(seen) == 3:
                    break
                await asyncio.sleep(0.05)
            assert [m.text for m in seen] == ["a", "b", "c"] and log.state.epoch == epoch
        finally:
            await log.close()

    asyncio.run(asyncio.wait_for(body(), 60))


def test_the_log_is_not_ready_while_the_primary_has_no_replica(topology):
    """``check`` (what /readyz asks): ready with replicas; with none attached, a
    sentence that says nothing can be confirmed."""
    from wslab.chat.errors import StoreError
    from wslab.chat.stores.redis import RedisLog
    from wslab.chat.stores.redis.client import SentinelService

    async def body():
        log = RedisLog(SentinelService(tuple(topology.addresses), topology.service))
        try:
            await log.check()
            primary = topology.primary()
            for server in topology.servers:
                if server is not primary:
                    topology.kill(server)
            for _ in range(100):  # bounded: 10 s for the primary to see them gone
                try:
                    await log.check()
                except StoreError as error:
                    return str(error)
                await asyncio.sleep(0.1)
            return None
        finally:
            await log.close()

    refused = asyncio.run(asyncio.wait_for(body(), 60))
    assert refused is not None and "sem réplica" in refused


def test_a_line_not_confirmed_then_sent_again_with_its_id_is_stored_once(topology):
    """Both replicas paused: the line reaches the primary but no replica, so it is
    refused (never echoed) though the primary holds it above the committed offset.
    Replicas back, the client sends it again with the same id: one copy, at the first
    copy's offset, delivered once."""
    from wslab.chat.errors import StoreError
    from wslab.chat.stores.redis import RedisLog
    from wslab.chat.stores.redis.client import SentinelService

    async def body():
        log = RedisLog(SentinelService(tuple(topology.addresses), topology.service))
        seen = []
        await log.start(seen.extend)
        try:
            assert await log.append("public", "ana", None, "a", "k1") == 1
            primary = topology.primary()
            replicas = [s for s in topology.servers if s is not primary]
            for replica in replicas:
                topology.pause(replica)
            try:
                with pytest.raises(StoreError, match="não foi confirmada"):
                    await log.append("public", "ana", None, "b", "k2")
                with _client(primary) as client:
                    held = [f["x"] for _, f in client.xrange("wslab:chat:log")]
                    committed = client.hget("wslab:chat:meta", "c")
            finally:
                for replica in replicas:
                    topology.resume(replica)
            offset = None
            for _ in range(200):  # bounded: 20 s for the replicas to confirm again
                try:
                    offset = await log.append("public", "ana", None, "b", "k2")
                    break
                except StoreError:
                    await asyncio.sleep(0.1)
            for _ in range(100):
                if len(seen) >= 2:
                    break
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.2)  # a second copy would be delivered by now
            with _client(primary) as client:
                stored = [(f["x"], f["i"]) for _, f in client.xrange("wslab:chat:log")]
            return held, committed, offset, [(m.text, m.client_id) for m in seen], stored
        finally:
            await log.close()

    held, committed, offset, seen, stored = asyncio.run(asyncio.wait_for(body(), 60))
    assert held == ["a", "b"] and committed == "1"  # on the primary, not committed
    assert offset == 2
    assert seen == stored == [("a", "k1"), ("b", "k2")]


def test_primary_killed_under_traffic_loses_nothing_acknowledged(topology):
    """SIGKILL of the primary: a replica is promoted, both nodes follow; lines sent
    meanwhile get errors, none acknowledged is lost, every resume is recovered."""
    with nodes(topology) as started:
        clients = recorders([url for _, url in started], seed=1, reconnect=1.5)
        moments = {}

        async def fault():
            await asyncio.sleep(2)
            old = topology.primary()
            moments["kill"] = asyncio.get_running_loop().time()
            topology.kill(old)
            await in_thread(topology.wait_failover, old)
            await acked_since(clients, moments["kill"] + 0.1)

        asyncio.run(run_clients(clients, fault))
    report = final_check(topology, clients)
    assert acks_after(clients, moments["kill"] + 0.1) > 0  # service came back
    assert report.resumes > 0 and report.recovered == report.resumes


def test_a_paused_primary_that_comes_back_acknowledges_nothing(topology):
    """SIGSTOP past the failover, then SIGCONT (split brain): the old primary takes no
    confirmed write (a write on it is never copied to a replica), becomes a replica of
    the new one, and its unacknowledged tail is gone; nothing any client saw is
    contradicted."""
    with nodes(topology) as started:
        clients = recorders([url for _, url in started], seed=2, reconnect=2.0)
        outcome = {}

        async def fault():
            await asyncio.sleep(2)
            old = topology.primary()
            topology.pause(old)
            new = await in_thread(topology.wait_failover, old)
            topology.resume(old)
            with _client(old) as client:  # right after it wakes, still a primary
                pipe = client.pipeline(transaction=False)
                pipe.set("split-brain", "1")
                pipe.execute_command("WAIT", 1, 300)
                outcome["written"], outcome["replicas"] = pipe.execute(raise_on_error=False)
            await in_thread(topology.wait_settled)
            outcome["role"] = topology.role(old)
            with _client(old) as a, _client(new) as b:
                outcome["kept"] = a.exists("split-brain") + b.exists("split-brain")

        asyncio.run(run_clients(clients, fault))
    final_check(topology, clients)
    # The write on the isolated primary was refused (min-replicas-to-write) or, taken
    # before it counted its replicas gone, never copied to one (so never confirmed);
    # either way it is gone from both servers once the old primary is a replica.
    written, replicas = outcome["written"], outcome["replicas"]
    assert isinstance(written, Exception) or replicas == 0
    assert outcome["role"] == "slave" and outcome["kept"] == 0


def test_a_killed_replica_then_none_refuses_clearly_and_loses_nothing(topology):
    """One replica killed: writes go on (the other remains). Both killed: every line
    is refused with a sentence about the replica, never acknowledged; replicas back:
    writes go on."""
    with nodes(topology) as started:
        clients = recorders([url for _, url in started], seed=3)
        moments = {}

        async def fault():
            await asyncio.sleep(1.5)
            primary = topology.primary()
            first, second = [s for s in topology.servers if s is not primary]
            topology.kill(first)
            moments["one"] = asyncio.get_running_loop().time()
            await acked_since(clients, moments["one"] + 1.0)
            topology.kill(second)
            moments["none"] = asyncio.get_running_loop().time()
            await asyncio.sleep(3)
            moments["back"] = asyncio.get_running_loop().time()
            topology.heal(wait=False)
            await in_thread(topology.wait_settled)
            await acked_since(clients, moments["back"])

        asyncio.run(run_clients(clients, fault))
    final_check(topology, clients)
    loop_time = moments  # recorder times are time.monotonic, as is the loop's clock
    assert acks_after(clients, loop_time["one"] + 1.0) > 0
    refused = errors_after(clients, loop_time["none"] + 1.5)
    assert refused and all("réplica" in text for text in refused), refused[:3]
    late = [
        e
        for c in clients
        for e in c.history
        if e[0] == "message"
        and loop_time["none"] + 1.5 < e[1] < loop_time["back"]
        and e[3] == c.user
    ]
    assert late == []  # nothing acknowledged without a replica
    assert acks_after(clients, loop_time["back"]) > 0


def test_sentinels_below_quorum_no_failover_a_clear_refusal(topology):
    """Two of three Sentinels dead, then the primary: no failover (one Sentinel cannot
    reach the quorum), lines are refused with a sentence; the primary back (with its
    AOF) and the Sentinels back: the same epoch, nothing acknowledged lost."""
    with nodes(topology) as started:
        clients = recorders([url for _, url in started], seed=4)
        outcome = {}

        async def fault():
            await asyncio.sleep(1.5)
            primary = topology.primary()
            for sentinel in topology.sentinels[:2]:
                topology.kill(sentinel)
            topology.kill(primary)
            outcome["down"] = asyncio.get_running_loop().time()
            await asyncio.sleep(5)  # twice a failover's time
            outcome["roles"] = [topology.role(s) for s in topology.servers if s is not primary]
            outcome["back"] = asyncio.get_running_loop().time()
            topology.restart(primary, alone=True)
            topology.heal(wait=False)
            await in_thread(topology.wait_settled)
            await acked_since(clients, outcome["back"])

        asyncio.run(run_clients(clients, fault))
    final_check(topology, clients)
    assert outcome["roles"] == ["slave", "slave"]
    refused = errors_after(clients, outcome["down"] + 0.5)
    # Each refusal is one sentence saying which store failed and what it means (a line
    # not confirmed; a /msg whose recipient could not be looked up), or, once the node
    # has announced the outage, the line refused at once as that notice said.
    odd = sorted(
        {t for t in refused if not t.startswith("O Redis do serviço") and t != STORE_DOWN_LINE}
    )
    assert refused and not odd, odd
    assert acks_after(clients, outcome["back"]) > 0


def test_a_node_killed_during_a_failover(topology):
    """The primary and node A killed together: A's clients resume on B once the
    failover is done, recovered and exact; nothing acknowledged lost."""
    with nodes(topology) as started:
        (process_a, url_a), (_, url_b) = started
        clients = recorders([url_a, url_b], seed=5)
        for client in clients[:3]:
            client.urls = [url_a]  # they start on A ...

        async def fault():
            await asyncio.sleep(2)
            old = topology.primary()
            for client in clients:
                # ... and all come back on B (A's port, once free, may be anyone's)
                client.urls = [url_b]
            topology.kill(old)
            process_a.kill()
            killed = asyncio.get_running_loop().time()
            await in_thread(topology.wait_failover, old)
            await acked_since(clients[:3], killed)

        asyncio.run(run_clients(clients, fault))
    report = final_check(topology, clients)
    assert report.resumes >= 3 and report.recovered == report.resumes


def test_the_network_between_a_node_and_the_primary_cut_and_healed(tmp_path):
    """Node A's connections to the primary cut (a TCP proxy in front of every data
    server; the kernel's packet filter is not assumed): A's sessions are told, A's
    lines are refused, B goes on; healed: A delivers what was committed meanwhile, in
    order, with no gap; nothing acknowledged lost. No failover: the Sentinels still
    reach the primary."""
    with ValkeyHA(tmp_path / "ha", proxied=True) as topology, nodes(topology) as started:
        (process_a, url_a), (_, url_b) = started
        clients = recorders([url_a, url_b], seed=6)
        for index, client in enumerate(clients):
            client.urls = [url_a] if index < 3 else [url_b]
        moments = {}

        async def fault():
            await asyncio.sleep(2)
            primary = topology.primary()
            proxy = topology.proxies[primary.port]
            moments["cut"] = asyncio.get_running_loop().time()
            assert proxy.cut(f"wslab-chat-{process_a.pid}".encode()) > 0
            await asyncio.sleep(3)
            moments["heal"] = asyncio.get_running_loop().time()
            proxy.heal()
            await acked_since(clients[:3], moments["heal"] + 0.5)
            moments["primary"] = topology.primary() is primary

        asyncio.run(run_clients(clients, fault))
        report = final_check(topology, clients)
    on_a, on_b = clients[:3], clients[3:]
    cut, healed = moments["cut"], moments["heal"]
    assert moments["primary"]  # no failover
    assert acks_after(on_b, cut + 0.5) > acks_after(on_b, healed)  # B went on during the cut
    assert errors_after(on_a, cut)  # A's lines during the cut were refused
    notices = [e[2] for c in on_a for e in c.history if e[0] == "system" and e[1] > cut]
    assert any("perdeu o contato" in text for text in notices)
    assert any("restabelecido" in text for text in notices)
    assert acks_after(on_a, healed + 0.5) > 0
    assert report.violations == 0


def _serve(*options):
    return subprocess.run(
        [sys.executable, "-m", "wslab.chat", "serve", "--port", "0", *options],
        capture_output=True,
        text=True,
        timeout=8 * WAIT,
    )


def test_a_sentinel_address_that_is_not_one_is_refused_by_the_command_line():
    result = _serve("--redis-sentinel", "127.0.0.1")
    assert result.returncode == 2 and "HOST:PORTA" in result.stderr


def test_no_sentinel_answering_ends_the_start_with_one_sentence():
    from wslab.chat.testing.valkey import free_port

    result = _serve("--redis-sentinel", f"127.0.0.1:{free_port()}", "--redis-service", "x")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "nenhum Sentinel indica" in result.stderr, result.stderr
