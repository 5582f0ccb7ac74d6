"""Durable ingest: messages per second one chat server accepts and commits, with 1, 10
and 100 senders (issue 11; target: 5,000 messages/s), on three layouts in one run:

- ``sqlite``: the default, one node on a SQLite file (``--db TMP``, WAL,
  ``synchronous=FULL``);
- ``valkey``: one node on one Valkey (``--redis URL``, AOF ``appendfsync always``, no
  replica): what a store shared by several nodes costs;
- ``ha``: one node on a Valkey primary with two replicas and three Sentinels
  (``--redis-sentinel ... --redis-service wslab``; every process's AOF ``always``): a
  line is echoed only once every replica received it and one has it on disk (issue 23),
  so this is the cost of surviving the primary's loss.

The Valkey processes are started by the project (:mod:`wslab.chat.testing`) on
loopback and share the machine's two CPUs with the node and the senders.

A real server process (``python -m wslab.chat serve <store> --port 0 --max-rate 0
--max-frames 0 --kdf-n 1024``, pinned to CPU 0 when the machine allows) and, in this
process (CPU 1), N sender connections (``websockets``' asyncio client). Each sender keeps at most
``window`` lines in flight: it sends, and sends the next one when the echo of an
earlier one comes back. An echo goes out only after the transaction that stored the
line has committed (``synchronous=FULL``: after the WAL's fsync), so echoes counted
are messages committed. Each line is ``/msg <self> <n>``, a private message to the
sender itself, with an id (``<self>-<n>``, kept by the store so a re-send is stored
once: the browser gives every line one): every committed message costs exactly one delivery (its echo), so the
figure is ingest and not fan-out (a public line from 100 senders would reach 100
sessions).

Measured per layout and N, after ``warmup`` seconds, for ``duration`` seconds: echoes
per second, the echo latency (time the line was written to the socket to time its echo
was read, p50 and p99), and the CPU time used by the server and by this process in that
window (which of the two is the bottleneck). Afterwards the server is stopped and the
store read: its newest committed offset must equal the echoes received (nothing echoed
that was not stored, nothing stored that was not echoed once the senders drained).

With ``--fsyncs`` (needs ``strace``; SQLite only), one more pass per N runs the server under
``strace -c`` to count its fsync/fdatasync calls: the commits, hence messages per
commit (the group commit's size). strace slows the server down, so that pass is not
used for the throughput figures.

Run: ``python -m benchmarks.chat_ingest`` (writes benchmarks/results/chat_ingest.json),
``--quick``, or ``--layouts ha`` for one layout.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import re
import select
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from collections.abc import Sequence
from pathlib import Path

from websockets.asyncio.client import connect

__all__ = ["Server", "measure", "main"]

RESULTS = Path(__file__).parent / "results" / "chat_ingest.json"
SENDERS = (1, 10, 100)
TARGET = 5_000  # messages per second (issue 11)
WAIT = 10.0  # seconds: the bound on every start, connect and drain
OPEN_AT_ONCE = 8  # connections in their handshake at once (under the server's waiting cap)


def _pin(cpu: int):
    def pin() -> None:
        if hasattr(os, "sched_setaffinity") and os.cpu_count() and os.cpu_count() > cpu:
            with contextlib.suppress(OSError):  # pinning is best effort
                os.sched_setaffinity(0, {cpu})

    return pin


class Server:
    """``python -m wslab.chat serve`` on a fresh database in ``folder``, as a process.

    ``strace`` (a path to write a syscall summary to) runs it under ``strace -c`` for
    fsync and fdatasync; ``kdf_n`` is scrypt's N for new secrets (lowered by default:
    the benchmark registers up to 100 names); ``store``: the options that choose
    another store than the database (``--redis URL``, ``--redis-sentinel ...``);
    ``port``: 0 for a free one; ``cpu``: the CPU it is pinned to (None: not pinned);
    ``log``: a file its log is appended to (by default it is read and dropped).
    """

    def __init__(
        self,
        folder: Path,
        *,
        strace: Path | None = None,
        kdf_n: int = 1024,
        store: Sequence[str] = (),
        port: int = 0,
        cpu: int | None = 0,
        log: Path | None = None,
    ) -> None:
        self.log = log
        self.db = folder / "chat.db"
        command = [
            sys.executable,
            "-m",
            "wslab.chat",
            "serve",
            *(store or ("--db", str(self.db))),
            "--port",
            str(port),
            "--max-rate",
            "0",
            "--max-frames",
            "0",
            "--kdf-n",
            str(kdf_n),
            "--registrations-per-minute",
            "0",
            "--max-per-address",
            "1000",
        ]
        if strace is not None:
            command = [
                "strace",
                "-f",
                "-c",
                "-e",
                "trace=fsync,fdatasync",
                "-o",
                str(strace),
                *command,
            ]
        self.process = subprocess.Popen(
            command,
            stderr=subprocess.PIPE,
            text=True,
            preexec_fn=None if cpu is None else _pin(cpu),
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        self.url = self._wait_ready()
        self.pid = self._server_pid()

    def _wait_ready(self) -> str:
        deadline = time.monotonic() + WAIT
        stderr = self.process.stderr
        while time.monotonic() < deadline:
            ready, _, _ = select.select([stderr], [], [], deadline - time.monotonic())
            if not ready:
                break
            line = stderr.readline()
            found = re.search(r"servindo o chat em http://127\.0\.0\.1:(\d+)/", line)
            if found:
                threading.Thread(target=self._drain, daemon=True).start()
                return f"ws://127.0.0.1:{found.group(1)}/ws"
            if not line:
                break
        self.process.kill()
        raise RuntimeError(f"o servidor não começou: {stderr.read()}")

    def _drain(self) -> None:
        """Read the server's log as it comes (so the server never blocks on it)."""
        if self.log is None:
            self.process.stderr.read()
            return
        with open(self.log, "a") as sink:
            for line in self.process.stderr:
                sink.write(line)
                sink.flush()

    def _server_pid(self) -> int:
        """The Python process's pid (a child of strace when traced)."""
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        if children.exists():
            kids = children.read_text().split()
            if kids and "strace" in Path(f"/proc/{self.process.pid}/comm").read_text():
                return int(kids[0])
        return self.process.pid

    def cpu_seconds(self) -> float:
        """User plus system CPU time of the server process (every thread) so far."""
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        """SIGTERM (the server closes its connections and the database), then wait."""
        if self.process.poll() is None:
            os.kill(self.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=WAIT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=WAIT)


class _Sender:
    """One connection: keeps ``window`` lines in flight, records each echo's latency."""

    def __init__(self, index: int, window: int) -> None:
        self.user = f"s{index}"
        self.window = window
        self.sent: deque[int] = deque()  # perf_counter_ns of the lines in flight, in order
        self.latencies: list[int] = []  # ns, of echoes read inside the measured window
        self.echoes = 0  # echoes read inside the measured window
        self.total = 0  # echoes read in all
        self.last_offset = 0
        self.errors = 0
        self.ready = False

    async def run(
        self, url: str, opened: asyncio.Semaphore, go: asyncio.Event, clock: dict
    ) -> None:
        async with opened:
            ws = await asyncio.wait_for(connect(url, compression=None, max_queue=None), WAIT)
            await ws.send(json.dumps({"type": "hello", "user": self.user, "secret": "bench"}))
            welcome = json.loads(await asyncio.wait_for(ws.recv(), WAIT))
            if welcome.get("type") != "welcome":
                raise RuntimeError(f"{self.user} não entrou: {welcome}")
        self.ready = True
        try:
            await go.wait()
            n = 0
            # With an id per line, as the browser sends them: the store keeps each id.
            line = '{"type":"say","text":"/msg ' + self.user + ' %d","id":"' + self.user + '-%d"}'
            while len(self.sent) < self.window:
                n += 1
                self.sent.append(time.perf_counter_ns())
                await ws.send(line % (n, n))
            while self.sent:
                frame = await asyncio.wait_for(ws.recv(), WAIT)
                now = time.perf_counter_ns()
                data = json.loads(frame)
                if data.get("type") != "message":
                    self.errors += 1
                    continue
                if data["offset"] <= self.last_offset:
                    raise RuntimeError(f"{self.user}: offsets fora de ordem")
                self.last_offset = data["offset"]
                began = self.sent.popleft()
                self.total += 1
                if clock["start"] <= now < clock["end"]:
                    self.echoes += 1
                    self.latencies.append(now - began)
                if now < clock["stop"]:
                    n += 1
                    self.sent.append(time.perf_counter_ns())
                    await ws.send(line % (n, n))
        finally:
            await ws.close()


def _percentile(values: list[int], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


async def _drive(
    url: str, senders: int, window: int, warmup: float, duration: float, server: Server
) -> dict:
    pool = [_Sender(i, window) for i in range(senders)]
    opened, go = asyncio.Semaphore(OPEN_AT_ONCE), asyncio.Event()
    clock = {"start": float("inf"), "end": float("inf"), "stop": float("inf")}
    tasks = [asyncio.create_task(s.run(url, opened, go, clock)) for s in pool]
    deadline = time.monotonic() + WAIT + senders * 0.1
    while not all(s.ready for s in pool):  # every connection past its welcome
        for task in tasks:
            if task.done():
                task.result()  # raises what stopped it
        if time.monotonic() > deadline:
            raise RuntimeError("as conexões não abriram a tempo")
        await asyncio.sleep(0.01)
    began = time.perf_counter_ns()
    clock["start"] = began + int(warmup * 1e9)
    clock["end"] = clock["start"] + int(duration * 1e9)
    clock["stop"] = clock["end"]
    go.set()
    await asyncio.sleep(warmup)
    cpu = (server.cpu_seconds(), os.times())
    await asyncio.sleep(duration)
    cpu_end = (server.cpu_seconds(), os.times())
    async with asyncio.timeout(WAIT):
        await asyncio.gather(*tasks)
    latencies = [x for s in pool for x in s.latencies]
    echoes = sum(s.echoes for s in pool)
    mine = (cpu_end[1].user + cpu_end[1].system) - (cpu[1].user + cpu[1].system)
    return {
        "senders": senders,
        "window": window,
        "duration_s": duration,
        "messages_per_s": echoes / duration,
        "echo_p50_ms": _percentile(latencies, 0.50) / 1e6,
        "echo_p99_ms": _percentile(latencies, 0.99) / 1e6,
        "server_cpu": (cpu_end[0] - cpu[0]) / duration,
        "client_cpu": mine / duration,
        "echoes_total": sum(s.total for s in pool),
        "errors": sum(s.errors for s in pool),
    }


LAYOUTS = ("sqlite", "valkey", "ha")


@contextlib.contextmanager
def _layout(name: str, folder: Path):
    """The store of a layout, started fresh in ``folder``: yields the ``serve`` options
    that choose it and a function giving its committed offset (call it after the
    server stopped)."""
    if name == "sqlite":

        def committed() -> int:
            with sqlite3.connect(folder / "chat.db") as db:
                return int(db.execute("SELECT value FROM meta WHERE key = 'newest'").fetchone()[0])

        yield (), committed
        return
    import redis

    from wslab.chat.testing import LocalValkey, ValkeyHA

    if name == "valkey":
        with LocalValkey(folder / "valkey") as server:
            yield ("--redis", server.url), lambda: _committed(redis, server)
    elif name == "ha":
        with ValkeyHA(folder / "ha") as topology:
            yield topology.sentinel_flags, lambda: _committed(redis, topology.wait_primary())
    else:
        raise ValueError(f"unknown layout {name!r}: one of {', '.join(LAYOUTS)}")


def _committed(redis, server) -> int:
    """The committed offset of the chat's log in a local Valkey."""
    with redis.Redis(host=server.host, port=server.port, decode_responses=True) as client:
        return int(client.hget("wslab:chat:meta", "c") or 0)


def measure(
    senders: int,
    *,
    layout: str = "sqlite",
    window: int = 16,
    warmup: float = 1.0,
    duration: float = 5.0,
    strace: Path | None = None,
) -> dict:
    """One run with ``senders`` connections against a fresh server and store."""
    with (
        tempfile.TemporaryDirectory(prefix="wslab-ingest-") as folder,
        _layout(layout, Path(folder)) as (store, committed),
    ):
        server = Server(Path(folder), strace=strace, store=store)
        try:
            row = asyncio.run(_drive(server.url, senders, window, warmup, duration, server))
        finally:
            server.stop()
        row["layout"] = layout
        row["committed"] = committed()
    if row["committed"] != row["echoes_total"]:
        raise RuntimeError(
            f"{row['echoes_total']} ecos e {row['committed']} mensagens no banco: deviam ser iguais"
        )
    return row


def _fsyncs(summary: Path) -> int:
    """fsync plus fdatasync calls in a ``strace -c`` summary."""
    calls = 0
    for line in summary.read_text().splitlines():
        parts = line.split()
        if parts and parts[-1] in ("fsync", "fdatasync"):
            calls += int(parts[3])
    return calls


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1 repeat of 2 s")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--window", type=int, default=16, help="lines in flight per sender")
    parser.add_argument(
        "--layouts",
        default=",".join(LAYOUTS),
        help=f"layouts to measure, separated by commas (of {', '.join(LAYOUTS)})",
    )
    parser.add_argument("--fsyncs", action="store_true", help="count commits with strace")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    layouts = [name for name in args.layouts.split(",") if name]
    unknown = set(layouts) - set(LAYOUTS)
    if unknown:
        parser.error(f"layouts desconhecidos: {', '.join(sorted(unknown))}")
    repeats, duration = (1, 2.0) if args.quick else (args.repeats, 5.0)
    load_before = list(os.getloadavg())  # the machine is shared: say how busy it was
    runs = []
    for _ in range(repeats):  # round-robin over layouts and N, so load hits all alike
        for layout in layouts:
            for n in SENDERS:
                row = measure(n, layout=layout, window=args.window, duration=duration)
                row["loadavg_1min"] = os.getloadavg()[0]
                runs.append(row)
                print(
                    f"{layout:>6} N={n:>3}: {row['messages_per_s']:8.0f} msg/s, eco p50 "
                    f"{row['echo_p50_ms']:.2f} ms p99 {row['echo_p99_ms']:.2f} ms, CPU "
                    f"servidor {row['server_cpu']:.0%} cliente {row['client_cpu']:.0%}",
                    flush=True,
                )
    summary = []
    for layout in layouts:
        for n in SENDERS:
            mine = [r for r in runs if r["senders"] == n and r["layout"] == layout]
            summary.append(
                {
                    "layout": layout,
                    "senders": n,
                    "messages_per_s": statistics.median(r["messages_per_s"] for r in mine),
                    "messages_per_s_min": min(r["messages_per_s"] for r in mine),
                    "messages_per_s_max": max(r["messages_per_s"] for r in mine),
                    "echo_p50_ms": statistics.median(r["echo_p50_ms"] for r in mine),
                    "echo_p99_ms": statistics.median(r["echo_p99_ms"] for r in mine),
                    "server_cpu": statistics.median(r["server_cpu"] for r in mine),
                    "client_cpu": statistics.median(r["client_cpu"] for r in mine),
                }
            )
    commits = []
    if args.fsyncs and shutil.which("strace") and "sqlite" in layouts:
        for n in SENDERS:
            with tempfile.TemporaryDirectory() as folder:
                trace = Path(folder) / "strace.txt"
                row = measure(n, window=args.window, duration=duration, strace=trace)
                calls = _fsyncs(trace)
            commits.append(
                {
                    "senders": n,
                    "messages": row["committed"],
                    "fsyncs": calls,
                    "messages_per_fsync": row["committed"] / calls if calls else None,
                    "messages_per_s_under_strace": row["messages_per_s"],
                }
            )
            print(
                f"N={n:>3} (strace): {row['committed']} mensagens, {calls} fsyncs, "
                f"{row['committed'] / max(calls, 1):.1f} mensagens por fsync",
                flush=True,
            )
    options = "" if args.layouts == ",".join(LAYOUTS) else f" --layouts {args.layouts}"
    result = {
        "benchmark": "chat_ingest",
        "command": "python -m benchmarks.chat_ingest"
        + (" --quick" if args.quick else "")
        + options
        + (" --fsyncs" if args.fsyncs else ""),
        "target_messages_per_s": TARGET,
        "server": "python -m wslab.chat serve <store> --max-rate 0 --max-frames 0 --kdf-n 1024",
        "layouts": {
            "sqlite": "--db TMP (SQLite, WAL, synchronous=FULL)",
            "valkey": "--redis URL: one Valkey, AOF appendfsync always, no replica",
            "ha": "--redis-sentinel x3 --redis-service wslab: a primary, 2 replicas, "
            "3 Sentinels, AOF always everywhere; echo after WAIT (every replica) and "
            "WAITAOF 1 1",
        },
        "workload": "each sender: /msg <itself> <n>, at most `window` lines in flight",
        "window": args.window,
        "duration_s": duration,
        "repeats": repeats,
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "sqlite": sqlite3.sqlite_version,
            "loadavg_before": load_before,
            "loadavg_after": list(os.getloadavg()),
        },
        "summary": summary,
        "commits": commits,
        "runs": runs,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    print(f"escrito em {args.output}")


if __name__ == "__main__":
    main()
