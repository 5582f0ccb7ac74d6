"""A seeded fault run in the manner of Jepsen: two chat nodes over a Valkey primary, two
replicas and three Sentinels, clients recording every operation, faults at random, and
at the end an independent checker over the final log and every client's history
(issue 23).

The topology is :class:`wslab.chat.testing.ValkeyHA` with a TCP proxy in front of every
data server (so a node's network to the primary can be cut), the nodes are ``python -m
wslab.chat serve --redis-sentinel ...`` processes on fixed ports (a killed node comes
back at the same address), the clients are :mod:`benchmarks.ha.clients` (each user sends
a line every ~50 ms, public or private, and drops its connection every ~3 s to resume on
a node at random), the checker is :mod:`benchmarks.ha.checker`.

Faults, one at a time, dealt by the seeded random source from a shuffled deck of the
six kinds (so every kind comes up once in each six), each healed before a calm of 2 to
5 s and the next one:

- ``kill-primary``: SIGKILL; a replica is promoted; the old primary comes back as a
  replica 2 s later;
- ``pause-primary``: SIGSTOP until a replica is promoted, then SIGCONT (split brain);
- ``kill-replica``: SIGKILL; back 2 s later;
- ``sentinels-below-quorum``: two Sentinels SIGKILLed for 3 s (no failover possible);
- ``kill-node``: a chat node SIGKILLed, started again 2 s later;
- ``cut-node``: a node's connections to the primary cut for 3 s, then healed.

Reported (benchmarks/results/chat_faults.json): operations (lines sent and sent again,
messages received, welcomes), lines acknowledged, refusals, lines sent again with their
id and those refused then stored (once each), resumes (recovered or not), each
fault with its time, the failover time where there is one and the longest time with no
line acknowledged around it, and the violations the checker found.

Run: ``python -m benchmarks.chat_faults`` (120 s, seed 1), ``--seconds 30 --seed 7``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import tempfile
import threading
import time
from dataclasses import asdict
from pathlib import Path

import redis

from benchmarks.chat_ingest import Server
from benchmarks.ha.checker import check, read_log
from benchmarks.ha.clients import Recorder, run_clients
from wslab.chat.testing import ValkeyHA
from wslab.chat.testing.valkey import free_port

__all__ = ["FAULTS", "main", "run"]

RESULTS = Path(__file__).parent / "results" / "chat_faults.json"
USERS = ["ana", "bia", "caio", "davi", "eva", "fabio", "gil", "hugo"]
FAULTS = (
    "kill-primary",
    "pause-primary",
    "kill-replica",
    "sentinels-below-quorum",
    "kill-node",
    "cut-node",
)


class Nodes:
    """The chat nodes, each on a fixed port so that a restarted one keeps its URL."""

    def __init__(self, folder: Path, flags: list[str], count: int = 2) -> None:
        self.folder, self.flags = folder, flags
        self.ports = [free_port() for _ in range(count)]
        self.servers: list[Server | None] = [None] * count
        self.urls: list[str] = []  # of the nodes running: the clients' list, kept in place
        for index in range(count):
            self.start(index)

    def _url(self, index: int) -> str:
        return f"ws://127.0.0.1:{self.ports[index]}/ws"

    def start(self, index: int) -> None:
        store = [*self.flags, "--retention", "1000000"]
        log = self.folder / f"node{index}.log"
        self.servers[index] = Server(
            self.folder, store=store, port=self.ports[index], cpu=None, log=log
        )
        self.urls.append(self._url(index))

    def kill(self, index: int) -> None:
        """SIGKILL; its URL leaves the clients' list until it is started again (its
        port, free meanwhile, may be taken by any other process)."""
        server = self.servers[index]
        if server is not None:
            self.urls.remove(self._url(index))
            server.process.kill()
            server.process.wait(timeout=10)
            self.servers[index] = None

    def stop(self) -> None:
        for index in range(len(self.servers)):
            self.kill(index)


def _inject(kind: str, topology: ValkeyHA, nodes: Nodes, rng: random.Random) -> dict:
    """One fault, healed before it returns; what was measured."""
    outcome: dict = {"fault": kind, "at": time.monotonic()}
    if kind in ("kill-primary", "pause-primary"):
        old = topology.wait_primary()
        began = time.monotonic()
        if kind == "kill-primary":
            topology.kill(old)
        else:
            topology.pause(old)
        topology.wait_failover(old)
        outcome["failover_s"] = round(time.monotonic() - began, 2)
        if kind == "pause-primary":
            topology.resume(old)
        else:
            time.sleep(2)
            topology.restart(old)
    elif kind == "kill-replica":
        primary = topology.wait_primary()
        victim = rng.choice([s for s in topology.servers if s is not primary])
        topology.kill(victim)
        time.sleep(2)
        topology.restart(victim)
    elif kind == "sentinels-below-quorum":
        for sentinel in rng.sample(topology.sentinels, 2):
            topology.kill(sentinel)
        time.sleep(3)
    elif kind == "kill-node":
        index = rng.randrange(len(nodes.servers))
        outcome["node"] = index
        nodes.kill(index)
        time.sleep(2)
        nodes.start(index)
    elif kind == "cut-node":
        index = rng.randrange(len(nodes.servers))
        outcome["node"] = index
        primary = topology.wait_primary()
        proxy = topology.proxies[primary.port]
        outcome["connections_cut"] = proxy.cut(f"wslab-chat-{nodes.servers[index].pid}".encode())
        time.sleep(3)
        proxy.heal()
    topology.heal()
    outcome["healed_s"] = round(time.monotonic() - outcome["at"], 2)
    return outcome


def _longest_without_ack(acks: list[float], start: float, end: float) -> float:
    """The longest interval in [start, end] with no acknowledgement."""
    inside = [start, *(t for t in acks if start < t < end), end]
    return max(b - a for a, b in zip(inside, inside[1:], strict=False))


def run(seed: int, seconds: float, folder: Path, faults: tuple[str, ...] = FAULTS) -> dict:
    """The whole run (see the module docstring), with faults drawn from ``faults``;
    returns the report. The nodes' logs are left in ``folder``."""
    rng = random.Random(seed)
    with ValkeyHA(folder / "valkey", proxied=True) as topology:
        nodes = Nodes(folder, topology.sentinel_flags)
        try:
            clients = [
                Recorder(
                    user,
                    nodes.urls,
                    USERS,
                    random.Random(rng.random()),
                    reconnect=3.0,
                    address=f"127.0.0.{10 + index}",
                )
                for index, user in enumerate(USERS)
            ]
            stop = threading.Event()

            async def until_stopped() -> None:
                while not stop.is_set():
                    await asyncio.sleep(0.1)

            worker = threading.Thread(
                target=lambda: asyncio.run(run_clients(clients, until_stopped, settle=0)),
                name="clients",
            )
            worker.start()
            done = []
            began = time.monotonic()
            try:
                time.sleep(3)  # traffic first
                deck: list[str] = []
                while time.monotonic() - began < seconds:
                    if not deck:
                        deck = rng.sample(faults, len(faults))
                    done.append(_inject(deck.pop(), topology, nodes, rng))
                    time.sleep(rng.uniform(2, 5))
                for index, server in enumerate(nodes.servers):
                    if server is None:
                        nodes.start(index)
                time.sleep(3)  # calm: every line sent is answered
            finally:
                stop.set()
                worker.join(timeout=30)
            with redis.Redis(
                host=topology.wait_primary().host,
                port=topology.wait_primary().port,
                decode_responses=True,
            ) as client:
                epoch, log = read_log(client)
        finally:
            nodes.stop()
    report = check(epoch, log, {c.user: c.history for c in clients})
    acks = sorted(
        event[1]
        for c in clients
        for event in c.history
        if event[0] == "message" and event[3] == c.user and not event[6]
    )
    for fault in done:
        fault["longest_without_ack_s"] = round(
            _longest_without_ack(acks, fault["at"], fault["at"] + fault["healed_s"] + 2), 2
        )
        fault["at"] = round(fault["at"] - began, 2)
    return {"report": asdict(report), "faults": done, "seconds": round(time.monotonic() - began)}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=120.0, help="how long faults go on")
    parser.add_argument(
        "--faults", default=",".join(FAULTS), help="the faults to draw from, by commas"
    )
    parser.add_argument("--keep", type=Path, help="a folder to keep the nodes' logs in")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    faults = tuple(name for name in args.faults.split(",") if name)
    if not faults or set(faults) - set(FAULTS):
        parser.error(f"--faults: some of {', '.join(FAULTS)}")
    load_before = list(os.getloadavg())
    if args.keep is not None:
        args.keep.mkdir(parents=True, exist_ok=True)
        outcome = run(args.seed, args.seconds, args.keep, faults)
    else:
        with tempfile.TemporaryDirectory(prefix="wslab-faults-") as folder:
            outcome = run(args.seed, args.seconds, Path(folder), faults)
    report = outcome["report"]
    result = {
        "benchmark": "chat_faults",
        "command": f"python -m benchmarks.chat_faults --seed {args.seed} --seconds {args.seconds:g}"
        + ("" if faults == FAULTS else f" --faults {','.join(faults)}"),
        "seed": args.seed,
        "topology": "2 nodes; Valkey primary + 2 replicas + 3 Sentinels (quorum 2, "
        "down-after 1 s), AOF always, a TCP proxy before each data server",
        "clients": f"{len(USERS)} users, a line every ~50 ms (30% private), a resume every "
        "~3 s; refused and unanswered lines sent again with their id",
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "loadavg_before": load_before,
            "loadavg_after": list(os.getloadavg()),
        },
        **outcome,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    kinds = ", ".join(f"{f['fault']}" for f in outcome["faults"])
    print(
        f"{report['operations']} operações, {len(outcome['faults'])} falhas ({kinds}), "
        f"{report['violations']} violações; {report['acknowledged']} de {report['sent']} "
        f"linhas confirmadas, {report['errors']} recusas, {report['resent']} reenvios "
        f"(com o mesmo id), {report['appeared_after_error']} linhas recusadas e depois "
        f"guardadas (uma vez cada); {report['recovered']} de "
        f"{report['resumes']} retomadas recuperadas. Escrito em {args.output}",
        flush=True,
    )
    for example in report["examples"]:
        print("  violação:", example)
    return result


if __name__ == "__main__":
    main()
