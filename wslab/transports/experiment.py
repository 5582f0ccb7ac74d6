"""Run the same event stream over each transport and summarize what the client saw.

For each transport: latency per event (p50, p95, max, in ms), bytes per event in each
direction counted at the client socket (headers, handshakes and closes included, i.e.
the whole connection's bytes divided by the number of events), and the number of HTTP
requests and TCP connections the client opened.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial

from ..background import BackgroundServer
from .accounting import ByteCounter
from .events import TickSchedule
from .long_polling import LongPollingServer, receive_by_long_polling
from .receipt import Receipt
from .server_sent_events import ServerSentEventsServer, receive_by_server_sent_events
from .short_polling import ShortPollingServer, receive_by_polling
from .websocket_push import WebSocketServer, receive_by_websocket

Receiver = Callable[[int, TickSchedule, ByteCounter], Receipt]


@dataclass(frozen=True)
class Transport:
    """A named pair: a server class (context manager over a source) and its client."""

    name: str
    server: Callable[[TickSchedule], BackgroundServer]
    receive: Receiver


def default_transports(poll_intervals: Sequence[float] = (0.007, 0.11)) -> list[Transport]:
    """Short polling at each interval (seconds), then long polling, SSE and WebSocket.

    The default intervals do not divide the 20 ms between events at 50 events/s, so the
    phase between polls and events sweeps all values, as with independent clocks.
    """
    transports = [
        Transport(
            f"short polling {interval * 1000:g} ms",
            ShortPollingServer,
            partial(receive_by_polling, interval=interval),
        )
        for interval in poll_intervals
    ]
    return transports + [
        Transport("long polling", LongPollingServer, receive_by_long_polling),
        Transport("SSE", ServerSentEventsServer, receive_by_server_sent_events),
        Transport("WebSocket", WebSocketServer, receive_by_websocket),
    ]


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile: the smallest value with at least ``q``% of values at or below it.

    Raises:
        ValueError: if ``values`` is empty or ``q`` is outside (0, 100].
    """
    if not values:
        raise ValueError("percentile of no values")
    if not 0 < q <= 100:
        raise ValueError(f"q must be in (0, 100], got {q}")
    ordered = sorted(values)
    return ordered[math.ceil(q / 100 * len(ordered)) - 1]


@dataclass(frozen=True)
class Measurement:
    """What one transport achieved for one stream of ``count`` events."""

    name: str
    count: int
    seqs: tuple[int, ...]
    latencies_ms: tuple[float, ...]
    bytes_up: int
    bytes_down: int
    requests: int
    connections: int
    setup_bytes: tuple[int, int]  # (up, down) before the first event: handshake or headers
    closing_bytes: tuple[int, int]  # (up, down) after the last event: close handshake

    @property
    def event_bytes(self) -> tuple[int, int]:
        """(up, down) between setup and closing: what carrying the events cost."""
        return (
            self.bytes_up - self.setup_bytes[0] - self.closing_bytes[0],
            self.bytes_down - self.setup_bytes[1] - self.closing_bytes[1],
        )

    @property
    def p50_ms(self) -> float:
        return percentile(self.latencies_ms, 50)

    @property
    def p95_ms(self) -> float:
        return percentile(self.latencies_ms, 95)

    @property
    def max_ms(self) -> float:
        return max(self.latencies_ms)

    @property
    def up_per_event(self) -> float:
        """Bytes client → server per event (whole connection, amortized)."""
        return self.bytes_up / self.count

    @property
    def down_per_event(self) -> float:
        """Bytes server → client per event (whole connection, amortized)."""
        return self.bytes_down / self.count

    @property
    def total_per_event(self) -> float:
        return self.up_per_event + self.down_per_event

    @property
    def in_order_once(self) -> bool:
        """True if every event arrived exactly once and in order."""
        return self.seqs == tuple(range(self.count))


def run_transport(transport: Transport, count: int, rate: float) -> Measurement:
    """Serve ``count`` events at ``rate``/s over ``transport`` to one client and measure.

    The server starts on an ephemeral loopback port and is stopped even if the client
    fails. Raises whatever the client raises (``TimeoutError``, ``ConnectionError``...).
    """
    source = TickSchedule(count, rate)
    counter = ByteCounter()
    with transport.server(source) as server:
        receipt = transport.receive(server.port, source, counter)
    return Measurement(
        name=transport.name,
        count=count,
        seqs=tuple(receipt.seqs),
        latencies_ms=tuple(latency * 1000 for latency in receipt.latencies),
        bytes_up=counter.sent,
        bytes_down=counter.received,
        requests=receipt.requests,
        connections=counter.connections,
        setup_bytes=receipt.setup_bytes,
        closing_bytes=(
            counter.sent - receipt.stream_end_bytes[0],
            counter.received - receipt.stream_end_bytes[1],
        ),
    )


def run_experiment(
    count: int, rate: float, transports: Sequence[Transport] | None = None
) -> list[Measurement]:
    """Run every transport back to back on a fresh stream of ``count`` events at ``rate``/s."""
    return [run_transport(t, count, rate) for t in (transports or default_transports())]


def format_table(measurements: Sequence[Measurement]) -> str:
    """A plain-text table (pt-BR headers) of latency, bytes, requests and connections."""
    header = (
        "transporte",
        "p50 ms",
        "p95 ms",
        "máx ms",
        "B/evento ↑",
        "B/evento ↓",
        "requisições",
        "conexões",
    )
    rows = [
        (
            m.name,
            f"{m.p50_ms:.2f}",
            f"{m.p95_ms:.2f}",
            f"{m.max_ms:.2f}",
            f"{m.up_per_event:.1f}",
            f"{m.down_per_event:.1f}",
            str(m.requests),
            str(m.connections),
        )
        for m in measurements
    ]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    lines = [
        "  ".join(
            cell.ljust(w) if i == 0 else cell.rjust(w)
            for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        )
        for row in [header, *rows]
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
