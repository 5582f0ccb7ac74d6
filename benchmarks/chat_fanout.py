"""Fan-out of public chat messages: our server against bare websockets, python-socketio and Socket.IO on Node.js.

N sessions (100, 1,000 and 10,000) on loopback, every public message delivered to
all of them. Four servers face the same load generator, in the same run, on the
same workload, plus a calibration relay:

- ``wslab``: our chat server (``wslab.chat.net``), the system under test;
- ``bare``: a ``websockets`` server that relays each frame to every connection with
  ``broadcast`` and nothing else: the transport in Python with no application;
- ``socketio``: ``python-socketio`` on aiohttp with one room;
- ``socketio-node``: Socket.IO 4 on Node.js with one room, the server most people
  pick; installed with ``npm ci`` from ``benchmarks/socketio_node/package-lock.json``
  and skipped, with the reason printed and recorded, where node or npm is missing;
- ``raw`` (calibration, not a competitor): a hand-written asyncio relay that writes
  pre-framed bytes, the least Python can do per delivery: it marks what the load
  generator can absorb on this machine.

Every Python server runs on the same event loop (``--loop``: uvloop by default where
it is installed, else asyncio's); the table and the JSON say which.

Targets at 1,000 and 10,000 sessions, on deliveries per second: at least 0.75x the
calibration relay, 1.3x bare websockets, 8x python-socketio, and ahead of Socket.IO
on Node; and at most 32 KiB of server memory per idle session.

How it is measured, and why (details in ``benchmarks.fanout.loadgen``):

- Each server runs in its own process, started afresh for every run, pinned to CPU 0;
  the load generator is another process, pinned to CPU 1. On a 2-core machine they
  then never compete for a core. Both raise RLIMIT_NOFILE to the hard limit (10,000
  sessions take 10,000 descriptors on each side) and the servers listen with a
  backlog of 4,096.
- The load generator holds all N sessions in one process and receives as cheaply as
  Python allows (raw sockets, frames cut by length, the sequence number found with
  ``bytes.find``, no JSON). It reports its own CPU use beside the server's: the
  process near 100% of its core is what bounds the run (the ``bound`` column). It
  also reports CPU used by anything else on the machine during the measurement
  (``other``), so a noisy run shows itself.
- Payloads are the same size on the wire for all: the text is ``text_bytes``
  characters; ``bare``'s sender writes exactly the frame our server would deliver
  (the bare server relays it as is); Socket.IO adds its ``42["message",...]``
  envelope. The table shows the frame size each server delivered.
- One session sends, all N receive (the sender gets its echo). Closed loop: about
  ``window_deliveries`` deliveries in flight (``window_deliveries`` / N messages, at
  least 2), the next message sent when one has reached all N sessions, so no
  server is flooded beyond what it can drain. In a closed loop at saturation,
  latency is mostly that queue (Little's law: about ``window_deliveries`` /
  deliveries per second), so p50 follows throughput; p99 over p50 shows the spread
  of one fan-out and the jitter.
- Measured: deliveries read per second during ``duration`` seconds after a
  ``warmup``; latency per delivery from the write of the message to the read of its
  copy, both clocks in the load generator; p50 and p99 over all deliveries of the
  measurement. The server's resident memory (``VmRSS``) before any session, with
  all N open and idle, and at the end of the load; per session it is divided by N.
- Correctness: every session must get every message exactly once and in order;
  repeats, gaps and deliveries missing after the drain are counted as ``loss``.
- Each configuration runs ``repeats`` times; the order of the servers rotates from one
  repeat to the next, so a slow period of the machine does not fall on one server
  only. The table gives medians, the JSON keeps every run. The machine may be
  shared: before each run the benchmark waits (bounded) for other processes to
  leave the CPUs idle, and a run during which they took more than a quarter of a
  CPU is done again (twice at most; the quietest attempt is kept and flagged).
  The machine's load before the whole run is recorded too.

Where a delivery's time goes (py-spy at 250 Hz on the server process, 6 s inside the
measured interval, 2 December 2026). Before the coalesced writes, at 10,000 sessions
71% of our server's samples were in ``transport.write`` (the ``send`` system call,
which on loopback also runs the kernel's delivery into the receiving socket: ~17 us
per delivery here) and ~20% in the per-recipient Python (two passes: the slow-reader
and open checks in ``ChatService.send``, then the eligibility checks of
``write_prepared``; websockets' ``state`` property alone ~2%); ``Hub.route``, the JSON
encoding and the SQLite thread cost under 1% (once per message, not per delivery). At
1,000: 61% in the write, 31% in the per-recipient Python. The raw relay spends 93% of
its samples in the same ``transport.write``: the system call bounds both, and what
separates us from it is the Python per recipient. Now: one pass per recipient, each
attribute read once, the connection list built once per snapshot of the live sessions
(78% in the write and ~16% in that loop at 10,000); and a group commit's messages (at
1,000 sessions, counted before this change: 1.9 per group on average, 1 to 4) reach
each recipient in one write,
so the system call's cost is shared by the messages of a group. The raw relay writes
one frame per call, so with groups our server can pass it (fewer, larger reads are
cheaper for the load generator too): the relay marks the load generator's ceiling for
one write per delivery, not for ours, and at 1,000 sessions the load generator is
saturated with our server too. At 10,000 a group rarely holds more than one message (two in flight),
so there the system call bounds us as it bounds the relay (so the 2 December profile;
the 6 December run, on a faster machine where every server made 3 to 7 times its 2
December figure, had ours at 1.47x the relay at 10,000 sessions, not profiled). The
memory per idle
session at 1,000 is mostly the interpreter's base (about 32 MiB before any session,
the loop and websockets included; bare websockets has 28 MiB, the raw relay 24 MiB),
so the table gives, beside the issue's RSS / N, what one more session adds.

Writes ``benchmarks/results/chat_fanout.json`` (every run, medians, targets, machine,
load and parameters) and ``benchmarks/results/chat_fanout.png``.

Run: ``python -m benchmarks.chat_fanout`` (full: N = 100, 1,000 and 10,000, 3
repeats, several minutes on a quiet machine), or ``--quick`` (small N, short runs, a
few seconds, results not written unless ``--output`` is given).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import platform
import select
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from importlib import metadata
from pathlib import Path

from benchmarks.fanout import ALL_KINDS, NODE_KINDS, SERVER_KINDS, default_loop
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
from benchmarks.fanout.servers import NODE_PEER, install_node_peer

__all__ = ["Params", "run_one", "run_all", "summarize", "targets", "format_table", "plot", "main"]

RESULTS_DIR = Path(__file__).resolve().parent / "results"
TARGET_SESSIONS = (1000, 10000)
#: (reference server, minimum ratio of our deliveries/s to its), at each of TARGET_SESSIONS.
TARGETS = (("raw", 0.75), ("bare", 1.3), ("socketio", 8.0), ("socketio-node", 1.0))
#: Our server's resident memory per idle session (RSS / N), at most, at TARGET_SESSIONS.
MEMORY_TARGET_BYTES = 32 * 1024
LABELS = {
    "wslab": "wslab (nosso)",
    "bare": "websockets puro",
    "socketio": "python-socketio",
    "socketio-node": "Socket.IO (Node.js)",
    "raw": "relay mínimo (calibração)",
}
COLORS = {
    "wslab": "#1f77b4",
    "bare": "#7f7f7f",
    "socketio": "#d62728",
    "socketio-node": "#2ca02c",
    "raw": "#bcbd22",
}
SERVER_READY_TIMEOUT = 20.0


@dataclasses.dataclass(frozen=True)
class Params:
    """What one benchmark run does; stored in the JSON beside the figures."""

    sizes: tuple[int, ...] = (100, 1000, 10000)
    servers: tuple[str, ...] = ALL_KINDS
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

    def window(self, sessions: int) -> int:
        """Messages in flight for N sessions: about ``window_deliveries`` deliveries."""
        return max(2, round(self.window_deliveries / sessions))


QUICK = Params(sizes=(20, 100), repeats=1, window_deliveries=800, warmup=0.3, duration=0.7)


def _start_server(kind: str, cpu: int | None, params: Params, log) -> tuple[subprocess.Popen, int]:
    """Start one server process and wait for its ``READY <port>`` line."""
    command = [
        sys.executable,
        "-m",
        "benchmarks.fanout.servers",
        kind,
        "--retention",
        str(params.retention),
        "--loop",
        params.loop,
    ]
    if cpu is not None:
        command += ["--cpu", str(cpu)]
    proc = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=log, text=True)
    deadline = time.monotonic() + SERVER_READY_TIMEOUT
    line = ""
    while time.monotonic() < deadline and not line.endswith("\n"):
        ready, _, _ = select.select([proc.stdout], [], [], 0.1)
        if ready:
            chunk = proc.stdout.readline()
            if not chunk:
                break  # the process exited
            line += chunk
    if not line.startswith("READY "):
        stop(proc)
        raise BenchmarkError(
            f"o servidor {kind} não ficou pronto em {SERVER_READY_TIMEOUT:g} s{tail(log)}"
        )
    return proc, int(line.split()[1])


def loop_of(kind: str, params: Params) -> str:
    """The event loop a server kind runs on: the chosen one for Python, libuv's for Node.js."""
    return "node (libuv)" if kind in NODE_KINDS else params.loop


def run_one(kind: str, sessions: int, params: Params) -> RunRecord:
    """One server process, one load generator run against it; the load generator's record."""
    server_cpu, loadgen_cpu = cpus()
    window = params.window(sessions)
    with tempfile.TemporaryFile() as log:
        proc, port = _start_server(kind, server_cpu, params, log)
        try:
            command = [
                sys.executable,
                "-m",
                "benchmarks.fanout.loadgen",
                kind,
                "--port",
                str(port),
                "--sessions",
                str(sessions),
                "--window",
                str(window),
                "--text-bytes",
                str(params.text_bytes),
                "--warmup",
                str(params.warmup),
                "--duration",
                str(params.duration),
                "--setup-timeout",
                str(params.setup_timeout),
                "--drain-timeout",
                str(params.drain_timeout),
                "--stall-timeout",
                str(params.stall_timeout),
                "--server-pid",
                str(proc.pid),
            ]
            if loadgen_cpu is not None:
                command += ["--cpu", str(loadgen_cpu)]
            stdout = run_loadgen(command, params, f"{kind}, N={sessions}", [log])
            if proc.poll() is not None:
                raise BenchmarkError(f"o servidor {kind} morreu durante a medida{tail(log)}")
        finally:
            stop(proc)
    return dataclasses.replace(RunRecord.from_json(stdout), loop=loop_of(kind, params))


def available(servers: Sequence[str]) -> dict[str, str]:
    """The servers that cannot run here, each with the reason (Node.js peers without node or npm)."""
    if not any(kind in NODE_KINDS for kind in servers):
        return {}
    reason = install_node_peer()
    return {} if reason is None else {kind: reason for kind in servers if kind in NODE_KINDS}


def _progress(line: str) -> None:
    print(line, flush=True)


def run_all(params: Params, progress: Callable[[str], None] = _progress) -> list[RunRecord]:
    """Every (repeat, N, server), the servers' order rotating per repeat.

    A run during which other processes used more than ``NOISY_OTHER_CPU`` of a CPU
    is done again, up to ``params.noisy_retries`` times; the quietest attempt is
    kept and says how many attempts it took.
    """
    runs = []
    for repeat in range(params.repeats):
        shift = repeat % len(params.servers)
        order = params.servers[shift:] + params.servers[:shift]
        for sessions in params.sizes:
            for kind in order:
                result, attempts = quietest(
                    lambda kind=kind, sessions=sessions: run_one(kind, sessions, params),
                    lambda r: r.other_cpu,
                    params,
                    f"[{repeat + 1}/{params.repeats}] {kind:<13} N={sessions:<6}",
                    progress,
                )
                result = dataclasses.replace(result, repeat=repeat, attempts=attempts)
                runs.append(result)
                progress(
                    f"  [{repeat + 1}/{params.repeats}] {kind:<13} N={sessions:<6} "
                    f"{result.deliveries_per_s:>9,.0f} deliveries/s  p50 {result.p50_ms:6.1f} ms"
                    f"  p99 {result.p99_ms:6.1f} ms  cpu server {pct(result.server_cpu)}"
                    f" loadgen {pct(result.loadgen_cpu)} other {pct(result.other_cpu)}"
                    f"  setup {result.setup_s:4.1f} s"
                )
    return runs


def _per_session(rss: int | None, sessions: int) -> float | None:
    return None if rss is None else rss / sessions


def summarize(runs: Sequence[RunRecord]) -> list[dict]:
    """Median over the repeats of each (server, N); loss summed over them."""
    rows = []
    keys = sorted(
        {(r.sessions, r.server) for r in runs}, key=lambda k: (k[0], ALL_KINDS.index(k[1]))
    )
    for sessions, kind in keys:
        mine = [r for r in runs if r.sessions == sessions and r.server == kind]

        def median(values) -> float | None:
            values = [v for v in values if v is not None]
            return statistics.median(values) if values else None

        base = median(r.rss_base_bytes for r in mine)
        idle = median(r.rss_idle_bytes for r in mine)
        row = {
            "server": kind,
            "loop": mine[0].loop,
            "sessions": sessions,
            "window": mine[0].window,
            "runs": len(mine),
            "deliveries_per_s": median(r.deliveries_per_s for r in mine),
            "deliveries_per_s_min": min(r.deliveries_per_s for r in mine),
            "deliveries_per_s_max": max(r.deliveries_per_s for r in mine),
            "p50_ms": median(r.p50_ms for r in mine),
            "p99_ms": median(r.p99_ms for r in mine),
            "frame_bytes": mine[0].frame_bytes,
            "loss": sum(r.loss for r in mine),
            "sessions_closed": sum(r.sessions_closed for r in mine),
            "setup_s": median(r.setup_s for r in mine),
            "server_cpu": median(r.server_cpu for r in mine),
            "loadgen_cpu": median(r.loadgen_cpu for r in mine),
            "other_cpu": median(r.other_cpu for r in mine),
            "rss_base_bytes": base,
            "rss_idle_bytes": idle,
            "rss_load_bytes": median(r.rss_load_bytes for r in mine),
            # the measure: the whole resident set over the sessions
            "rss_idle_per_session": _per_session(idle, sessions),
            "rss_load_per_session": median(_per_session(r.rss_load_bytes, sessions) for r in mine),
            # what one more session costs: the growth from no session to N idle ones
            "rss_added_per_session": None
            if base is None or idle is None
            else (idle - base) / sessions,
        }
        row["bound"] = bound_by(row["server_cpu"], row["loadgen_cpu"])
        # deliveries per second of the server's own CPU: what a run with the CPU taken away still tells
        row["deliveries_per_cpu_s"] = median(
            r.deliveries_per_s / r.server_cpu if r.server_cpu else None for r in mine
        )
        # some repeat shared the CPUs with other work: its figures say more about that work
        row["suspect"] = any((r.other_cpu or 0.0) > NOISY_OTHER_CPU for r in mine)
        rows.append(row)
    return rows


def targets(summary: Sequence[dict], sizes: Sequence[int] = TARGET_SESSIONS) -> list[dict]:
    """Our deliveries/s over each reference's, and our memory per idle session, at ``sizes``."""
    out = []
    for sessions in sizes:
        by_server = {r["server"]: r for r in summary if r["sessions"] == sessions}
        if "wslab" not in by_server:
            continue
        ours = by_server["wslab"]
        for reference, minimum in TARGETS:
            if reference not in by_server:
                continue
            ratio = ours["deliveries_per_s"] / by_server[reference]["deliveries_per_s"]
            out.append(
                {
                    "measure": "deliveries_per_s",
                    "reference": reference,
                    "sessions": sessions,
                    "value": ratio,
                    "ratio": ratio,
                    "minimum": minimum,
                    "met": ratio >= minimum,
                    # how far below the target, as a share of the target (0 when met)
                    "shortfall": max(0.0, 1 - ratio / minimum),
                    "reference_bound": by_server[reference]["bound"],
                    "suspect": ours["suspect"] or by_server[reference]["suspect"],
                }
            )
        per_session = ours["rss_idle_per_session"]
        if per_session is not None:
            out.append(
                {
                    "measure": "rss_idle_per_session",
                    "reference": None,
                    "sessions": sessions,
                    "value": per_session,
                    # beside the measure, what one more session costs (not judged)
                    "added": ours.get("rss_added_per_session"),
                    "maximum": MEMORY_TARGET_BYTES,
                    "met": per_session <= MEMORY_TARGET_BYTES,
                    "shortfall": max(0.0, per_session / MEMORY_TARGET_BYTES - 1),
                    "suspect": False,  # memory is read with every session idle: other work does not change it
                }
            )
    return out


def target_lines(checks: Sequence[dict]) -> list[str]:
    lines = []
    for c in checks:
        verdict = ("met" if c["met"] else f"missed by {100 * c['shortfall']:.1f}%") + (
            " (suspect: other processes took CPU)" if c["suspect"] else ""
        )
        if c["measure"] == "deliveries_per_s":
            lines.append(
                f"wslab/{c['reference']} at N={c['sessions']}: {c['ratio']:.2f}x "
                f"(target >= {c['minimum']:.2f}x; {c['reference']} bound by "
                f"{c['reference_bound']}): {verdict}"
            )
        else:
            added = c.get("added")
            lines.append(
                f"wslab memory per idle session at N={c['sessions']}: {c['value'] / 1024:.1f} KiB "
                f"(RSS / N; target <= {c['maximum'] / 1024:.0f} KiB): {verdict}"
                + (
                    ""
                    if added is None
                    else f"; added per session (RSS growth / N): {added / 1024:.1f} KiB"
                )
            )
    return lines


def _kib(x: float | None) -> str:
    return "n/a" if x is None else f"{x / 1024:.1f}"


def format_table(summary: Sequence[dict]) -> str:
    head = (
        f"{'server':<14}{'N':>6}{'deliveries/s':>14}{'p50 ms':>8}{'p99 ms':>8}{'frame':>6}"
        f"{'loss':>5}{'cpu srv':>8}{'cpu gen':>8}{'other':>6}  {'bound':<8}"
        f"{'KiB/idle':>9}{'KiB/load':>9}{'KiB/added':>10}"
    )
    lines = [head, "-" * len(head)]
    for r in summary:
        lines.append(
            f"{r['server']:<14}{r['sessions']:>6}{r['deliveries_per_s']:>14,.0f}"
            f"{r['p50_ms']:>8.1f}{r['p99_ms']:>8.1f}{r['frame_bytes']:>6}{r['loss']:>5}"
            f"{pct(r['server_cpu']):>8}{pct(r['loadgen_cpu']):>8}{pct(r['other_cpu']):>6}  {r['bound']:<8}"
            f"{_kib(r['rss_idle_per_session']):>9}{_kib(r['rss_load_per_session']):>9}"
            f"{_kib(r['rss_added_per_session']):>10}"
        )
    return "\n".join(lines)


def _node_versions() -> dict:
    """node's version and the Socket.IO the lock file installs (None where missing)."""
    versions: dict[str, str | None] = {"node": None, "socket.io": None}
    try:
        done = subprocess.run(["node", "--version"], capture_output=True, text=True, timeout=10)
        versions["node"] = done.stdout.strip().lstrip("v") or None
    except (OSError, subprocess.TimeoutExpired):
        pass
    try:
        lock = json.loads((NODE_PEER / "package-lock.json").read_text())
        versions["socket.io"] = lock["packages"]["node_modules/socket.io"]["version"]
    except (OSError, KeyError, ValueError):
        pass
    return versions


def machine_info() -> dict:
    model = None
    try:
        with open("/proc/cpuinfo") as f:
            model = next(
                (line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), None
            )
    except OSError:
        pass
    versions = {}
    for package in (
        "websockets",
        "python-socketio",
        "python-engineio",
        "aiohttp",
        "uvloop",
        "matplotlib",
    ):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    return {
        "cpu_count": os.cpu_count(),
        "cpu_model": model,
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "libraries": versions | _node_versions(),
    }


def plot(summary: Sequence[dict], path: Path) -> None:
    """Deliveries per second, latency p50/p99 and memory per idle session, per server and N."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = sorted({r["sessions"] for r in summary})
    servers = [k for k in ALL_KINDS if any(r["server"] == k for r in summary)]
    cell = {(r["server"], r["sessions"]): r for r in summary}
    width = 0.8 / len(servers)
    fig, (ax_rate, ax_lat, ax_mem) = plt.subplots(1, 3, figsize=(15, 5.2))
    for i, kind in enumerate(servers):
        present = [n for n in sizes if (kind, n) in cell]
        xs = [sizes.index(n) + (i - (len(servers) - 1) / 2) * width for n in present]
        rows = [cell[(kind, n)] for n in present]
        rates = [r["deliveries_per_s"] / 1000 for r in rows]
        low = [(r["deliveries_per_s"] - r["deliveries_per_s_min"]) / 1000 for r in rows]
        high = [(r["deliveries_per_s_max"] - r["deliveries_per_s"]) / 1000 for r in rows]
        style = {
            "color": COLORS[kind],
            "hatch": "//" if kind not in SERVER_KINDS else None,
            "edgecolor": "white" if kind not in SERVER_KINDS else None,
        }
        bars = ax_rate.bar(
            xs, rates, width, label=LABELS[kind], yerr=[low, high], capsize=3, **style
        )
        ax_rate.bar_label(bars, labels=[f"{v:.0f}k" for v in rates], padding=2, fontsize=7)
        ax_lat.bar(xs, [r["p99_ms"] for r in rows], width, alpha=0.35, **style)
        ax_lat.bar(xs, [r["p50_ms"] for r in rows], width, **style)
        ax_mem.bar(
            xs, [(r["rss_idle_per_session"] or 0) / 1024 for r in rows], width, alpha=0.35, **style
        )
        ax_mem.bar(
            xs, [max(0, r["rss_added_per_session"] or 0) / 1024 for r in rows], width, **style
        )
    for ax in (ax_rate, ax_lat, ax_mem):
        ax.set_xticks(range(len(sizes)), [f"{n:,}".replace(",", ".") for n in sizes])
        ax.set_xlabel("sessões abertas (todas recebem cada mensagem)")
        ax.grid(axis="y", alpha=0.3)
    ax_rate.set_ylabel("entregas por segundo (milhares)")
    ax_rate.set_title("Vazão (mediana; traço = mín. e máx.)")
    ax_lat.set_yscale("log")
    ticks = [
        t
        for t in (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000)
        if min(r["p50_ms"] for r in summary) / 2 <= t <= max(r["p99_ms"] for r in summary) * 2
    ]
    ax_lat.set_yticks(ticks, [f"{t:g}" for t in ticks])
    ax_lat.minorticks_off()
    ax_lat.set_ylabel("latência do envio à recepção (ms, escala log)")
    ax_lat.set_title("Latência: p50 (cheia) e p99 (clara)")
    ax_mem.set_yscale("log")
    ax_mem.axhline(MEMORY_TARGET_BYTES / 1024, color="black", linestyle=":", linewidth=1)
    ax_mem.set_ylabel("KiB por sessão ociosa (escala log; pontilhado: meta)")
    ax_mem.set_title("Memória por sessão: RSS ÷ sessões (clara), acréscimo (cheia)", fontsize=10)
    fig.legend(
        *ax_rate.get_legend_handles_labels(),
        loc="lower center",
        ncol=len(servers),
        fontsize=9,
        frameon=False,
    )
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    defaults = Params()
    add_run_arguments(parser, defaults, "chat_fanout")
    parser.add_argument(
        "--servers",
        nargs="+",
        choices=ALL_KINDS,
        help="servers to run (default: all, raw included)",
    )
    args = parser.parse_args(argv)
    params, output = params_from(
        parser,
        args,
        defaults,
        QUICK,
        RESULTS_DIR,
        servers=tuple(args.servers) if args.servers else None,
    )
    server_cpu, loadgen_cpu = cpus()
    skipped = available(params.servers)
    for kind, reason in skipped.items():
        print(f"aviso: {kind} fica de fora: {reason}", file=sys.stderr)
    params = dataclasses.replace(
        params, servers=tuple(k for k in params.servers if k not in skipped)
    )
    load = announce_load(server_cpu)
    print(
        f"aviso: a máquina já usa {load['busy_cpus']:.2f} CPU antes do benchmark; os números vão oscilar",
        file=sys.stderr,
    )
    print(
        f"chat fan-out: N={list(params.sizes)}, {params.repeats} repeats, {params.duration:g} s measured "
        f"after {params.warmup:g} s warm-up, text {params.text_bytes} chars, "
        f"~{params.window_deliveries} deliveries in flight; Python servers on {params.loop}; "
        f"server on CPU {server_cpu}, load generator on CPU {loadgen_cpu}; machine load before: "
        f"{pct(load['busy_cpus']).strip()} busy, loadavg {load['loadavg_1_5_15']}",
        flush=True,
    )
    started = time.monotonic()
    try:
        runs = run_all(params)
    except BenchmarkError as exc:
        print(f"erro: {exc}", file=sys.stderr)
        return 1
    wall = time.monotonic() - started
    summary = summarize(runs)
    judged = [n for n in TARGET_SESSIONS if n in params.sizes] or [max(params.sizes)]
    checks = targets(summary, judged)
    print()
    print(format_table(summary))
    print()
    for line in target_lines(checks):
        print(line)
    for kind, reason in skipped.items():
        print(f"skipped {kind}: {reason}")
    noisy = [r for r in runs if (r.other_cpu or 0) > NOISY_OTHER_CPU]
    if noisy:
        print(
            f"warning: {len(noisy)} of {len(runs)} runs shared the machine with other work "
            f"(> {NOISY_OTHER_CPU} CPU used by other processes): their figures are suspect"
        )
    lost = [r for r in runs if r.loss or r.sessions_closed]
    if lost:
        print(
            f"LOSS: {len(lost)} runs did not deliver every message exactly once and in order "
            f"to every session (see 'loss' and the JSON)"
        )
    print(f"wall time: {wall:.0f} s")
    if output is not None:
        output.mkdir(parents=True, exist_ok=True)
        document = {
            "benchmark": "chat_fanout",
            "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "command": " ".join(
                ["python -m benchmarks.chat_fanout", *(argv if argv is not None else sys.argv[1:])]
            ).strip(),
            "machine": machine_info(),
            "parameters": dataclasses.asdict(params)
            | {
                "windows": {str(n): params.window(n) for n in params.sizes},
                "server_cpu": server_cpu,
                "loadgen_cpu": loadgen_cpu,
            },
            "load_before": load,
            "wall_seconds": wall,
            "skipped": skipped,
            "summary": summary,
            "targets": checks,
            "runs": [dataclasses.asdict(r) for r in runs],
        }
        json_path = output / "chat_fanout.json"
        json_path.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n")
        png_path = output / "chat_fanout.png"
        plot(summary, png_path)
        print(
            f"wrote {json_path.relative_to(ROOT) if json_path.is_relative_to(ROOT) else json_path} "
            f"and {png_path.name}"
        )
    return 1 if lost else 0


if __name__ == "__main__":
    raise SystemExit(main())
