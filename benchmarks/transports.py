"""Run notebook 01's transport experiment at larger sizes and print the table.

The notebook serves 60 events at 50/s (one every 20 ms) so it runs in seconds; here the
same servers, clients and byte counters serve longer streams, and faster ones, to see
whether the picture holds: latency p50/p95/max per event, bytes per event each way
counted at the client socket (headers, handshake and close included), requests and
connections, for short polling (two intervals), long polling, SSE and WebSocket.

Run: ``python -m benchmarks.transports`` (full sizes, about three minutes),
``--quick`` (the notebook's size), or ``--count N --rate R`` for one size of your own.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from wslab.transports import Measurement, default_transports, format_table, run_experiment

SIZES = ((500, 50.0), (1_000, 100.0), (2_000, 200.0))  # (events, events per second)
QUICK_SIZES = ((60, 50.0),)
POLL_INTERVALS_MS = (7.0, 110.0)


def ratios(measurements: Sequence[Measurement]) -> str:
    """One line per short polling run: its bytes and p50 relative to WebSocket's."""
    websocket_run = next(m for m in measurements if m.name == "WebSocket")
    lines = []
    for m in measurements:
        if m.name.startswith("short polling"):
            lines.append(
                f"{m.name}: {m.total_per_event / websocket_run.total_per_event:.1f}x the bytes per event"
                f" of WebSocket, p50 {m.p50_ms:.2f} ms vs {websocket_run.p50_ms:.2f} ms"
            )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="only the notebook's size (60 events at 50/s)"
    )
    parser.add_argument("--count", type=int, help="events per stream (with --rate: one size only)")
    parser.add_argument("--rate", type=float, help="events per second (with --count)")
    parser.add_argument(
        "--poll-ms",
        type=float,
        nargs="+",
        default=list(POLL_INTERVALS_MS),
        help="short polling intervals in milliseconds (default: 7 110)",
    )
    args = parser.parse_args(argv)
    if (args.count is None) != (args.rate is None):
        parser.error("--count e --rate vão juntos: informe os dois ou nenhum")
    if any(interval <= 0 for interval in args.poll_ms):
        parser.error("--poll-ms: os intervalos precisam ser positivos")
    sizes = (
        ((args.count, args.rate),)
        if args.count is not None
        else (QUICK_SIZES if args.quick else SIZES)
    )
    transports = default_transports(tuple(interval / 1000 for interval in args.poll_ms))
    for count, rate in sizes:
        try:
            measurements = run_experiment(count, rate, transports)
        except ValueError as exc:  # bad count or rate: one clear sentence, no traceback
            print(f"erro: {exc}", file=sys.stderr)
            return 2
        print(f"\n{count} events at {rate:g}/s ({count / rate:g} s per transport)")
        print(format_table(measurements))
        print(ratios(measurements))
        misdelivered = [m.name for m in measurements if not m.in_order_once]
        if misdelivered:
            print(f"NOT delivered once and in order: {', '.join(misdelivered)}")
            return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
