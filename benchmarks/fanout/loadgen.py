"""The load generator: N sessions in one asyncio process, a closed loop of public messages.

``python -m benchmarks.fanout.loadgen KIND --port P --sessions N [...]`` opens N
WebSocket sessions to the server of that kind, makes session 0 the sender, and prints
one JSON object on stdout with what it measured, a :class:`~.record.RunRecord` (or
one ``erro:`` line on stderr and exit status 1).

Why it is written by hand. On two cores the server gets one and this process the
other; if receiving cost as much as sending, every server would look the same (the
load generator's ceiling). So receiving is as cheap as Python allows: sessions are
opened with asyncio (one ``BufferedProtocol`` each, the opening handshake done with
:mod:`wslab.protocol.handshake`), then measured with a ``select.epoll`` loop of our own that
reads each ready socket with ``recv_into`` into one shared buffer. Server frames
(unmasked, never fragmented here) are cut by their length field alone. A message
is recognised by ``bytes.find`` of the marker ``"~`` that starts its text, followed
by a 9-digit sequence number: no UTF-8 decode, no JSON. Only setup frames (welcome,
Engine.IO open and connect, ready) are parsed as JSON. The same code speaks to every server; both Socket.IO peers (Python and Node.js)
are Engine.IO v4 over the websocket transport, opened directly (``0{...}`` open,
``40{auth}`` connect, ``40{"sid"}`` accepted, ``42[...]`` events, ``2`` ping
answered with ``3``).

Workload. A closed loop with ``window`` messages in flight: the sender sends the next
one only when some message has reached all N sessions (its own echo included), so no
server is pushed beyond what it drains and none builds an unbounded backlog. After
``warmup`` seconds the measurement runs for ``duration`` seconds: deliveries per
second is the number of deliveries read in that interval over its length; the latency
of a delivery is the time it was read minus the time its message was written to the
sender's socket (both ``perf_counter_ns`` in this process; one clock read per
``data_received`` call, shared by the frames that came in together). Then sending
stops and the messages in flight drain (bounded).

Memory. The server's resident set (``VmRSS``) is read three times: before any
session opens, once all N sessions are open and idle, and at the end of the
measured interval; plus its peak (``VmHWM``).

Correctness. Every session must receive every message exactly once and in order:
each session checks that a sequence number is the one after the previous; at the
end, every message must have reached all N sessions. Gaps, repeats and missing
deliveries are counted and reported, never hidden. A gap (a session got message
k + 1 without k) also frees k's slot in the window, so a lossy server is measured
and reported as lossy instead of stalling the loop.

Client frames are masked with a fresh key each (RFC 6455 5.3) through
:class:`wslab.protocol.frames.Frame`; only the sender sends, at most a few thousand frames
per second, so that costs little.

Several nodes (``--cluster``, one ``--port`` per node; ``benchmarks.chat_fanout_cluster``).
Session i opens on node ``i % nodes``, so the sessions split evenly and sessions 0, 1,
... are one sender on each node; message k is sent by the sender on node ``k % nodes``.
Messages from two senders may then be delivered in either order, so "in order" means:
each sender's messages in the order it sent them, and every session in the same order
as every other (for our chat, the order of the shared Redis stream). A
:class:`ClusterSession` checks both off the hot path: the common case (the message is
the lowest one this session has not seen) takes the same fast path as above; any other
arrival goes through :meth:`ClusterSession.arrived`, which keeps what arrived ahead,
counts a sender's message that never came (a gap, freeing its slot) or came after a
later one of the same sender (``reordered``), and folds each such arrival into a
fingerprint of the session's delivery order (the fast-path arrivals between two of them
are implied by its position). Sessions with equal fingerprints saw the same order. The
output is then one JSON object ``{"run": RunRecord fields, "cluster": {...}}`` with the
CPU of each ``--server-pid``, the number of distinct orders and the sessions outside
the commonest one.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import dataclasses
import json
import select
import socket
import sys
import time
from array import array
from collections.abc import Sequence

from wslab.protocol import NeedData
from wslab.protocol.frames import Frame, Opcode, new_mask
from wslab.protocol.handshake import (
    HandshakeError,
    build_request,
    check_response,
    generate_key,
    parse_response,
)

from . import ALL_KINDS, prepare_process, procfs
from .record import RunRecord

__all__ = ["PATHS", "ClusterSession", "Run", "Session", "main"]

PATHS = {
    "wslab": "/ws",
    "bare": "/",
    "raw": "/",
    "socketio": "/socket.io/?EIO=4&transport=websocket",
    "socketio-node": "/socket.io/?EIO=4&transport=websocket",
}
SOCKETIO_KINDS = ("socketio", "socketio-node")
SECRET = "bench-secret"
MARKER = b'"~'  # a message's text starts with ~ and 9 digits: its sequence number
SEQ_DIGITS = 9
CONNECT_CONCURRENCY = 50  # sessions in their opening handshake at once
IDLE_SETTLE = 0.5  # seconds with every session open and silent before the idle memory is read
ORDER_MODULUS = (1 << 61) - 1  # a Mersenne prime: the order fingerprint is a polynomial hash
ORDER_BASE = 1_000_003


def sender_templates(kind: str, user: str, text_bytes: int) -> str:
    """The text the sender sends for one message, with ``%d`` slots for the sequence.

    The bare server relays the sender's frame as is, so its sender writes the frame
    our server would deliver (same fields, same compact JSON of
    :mod:`wslab.chat.rules.wire`): every server then puts frames of nearly the same size
    on the wire.
    """
    filler = "x" * max(0, text_bytes - SEQ_DIGITS - 2)
    text = "~%09d~" + filler
    if kind == "wslab":
        return '{"type": "say", "text": "' + text + '"}'
    if kind in ("bare", "raw"):
        return (
            '{"type":"message","offset":%d,"kind":"public","from":"'
            + user
            + '","to":null,"text":"'
            + text
            + '","replayed":false}'
        )
    if kind in SOCKETIO_KINDS:
        return '42["say",{"text":"' + text + '"}]'
    raise ValueError(f"unknown server kind {kind!r}")


class SetupError(RuntimeError):
    """A session could not be opened and registered; the message says why."""


class Session(asyncio.BufferedProtocol):
    """One WebSocket session: handshake and setup, then the lean receive path.

    A buffered protocol: the transport reads into one buffer shared by all sessions
    (``recv_into``), parsed at once; a plain ``Protocol`` gets a new bytes object per
    read, and ``recv(256 KiB)`` allocates (and maps) 256 KiB each time, which made the
    receiving side cost several times more than the parsing itself.
    """

    __slots__ = (
        "run",
        "index",
        "user",
        "key",
        "transport",
        "pending",
        "upgraded",
        "ready",
        "expect",
        "gaps",
        "repeats",
        "frame_bytes",
        "closed",
        "sock",
        "port",
    )

    def __init__(self, run: Run, index: int) -> None:
        self.run = run
        self.index = index
        self.port = run.ports[index % len(run.ports)]
        self.user = f"u{index}"
        self.key = generate_key()
        self.transport = None
        self.pending = b""
        self.upgraded = False
        self.ready = run.loop.create_future()
        self.expect = 0  # next sequence number this session must see
        self.gaps = 0
        self.repeats = 0
        self.frame_bytes = 0  # size on the wire of the last message frame received
        self.closed = False
        self.sock = None  # the transport's socket, ours while the run pumps it

    # -- asyncio callbacks ------------------------------------------------------

    def connection_made(self, transport) -> None:
        self.transport = transport
        url = f"ws://{self.run.host}:{self.port}{PATHS[self.run.kind]}"
        transport.write(build_request(url, self.key))

    def connection_lost(self, exc) -> None:
        self.closed = True
        self._fail(f"a sessão {self.user} foi fechada pelo servidor durante a preparação")

    def get_buffer(self, sizehint: int) -> bytearray:
        return self.run.buffer

    def buffer_updated(self, nbytes: int) -> None:
        self.feed(nbytes, time.perf_counter_ns())

    def feed(self, nbytes: int, now: int) -> None:
        """Consume ``nbytes`` just read into the shared buffer, at time ``now``."""
        run = self.run
        if self.pending or not self.upgraded:
            data = self.pending + run.buffer[:nbytes]
            self.pending = b""
            if not self.upgraded:
                data = self._upgrade(bytes(data))
                if not data:
                    return
            size = len(data)
        else:
            data = run.buffer
            size = nbytes
        remaining = run.remaining
        sent_ns = run.sent_ns
        record = run.latencies.append
        pos = 0
        while size - pos >= 2:
            length = data[pos + 1] & 0x7F
            if length < 126:
                start = pos + 2
            elif length == 126:
                if size - pos < 4:
                    break
                length = (data[pos + 2] << 8) | data[pos + 3]
                start = pos + 4
            else:
                if size - pos < 10:
                    break
                length = int.from_bytes(data[pos + 2 : pos + 10], "big")
                start = pos + 10
            end = start + length
            if end > size:
                break
            if data[pos] == 0x81:  # FIN + text: the common case
                i = data.find(MARKER, start, end)
                if i >= 0:
                    seq = int(data[i + 2 : i + 2 + SEQ_DIGITS])
                    if seq == self.expect:
                        self.expect = seq + 1
                    elif not self.arrived(seq):  # a copy not to count again
                        pos = end
                        continue
                    self.frame_bytes = end - pos
                    record(now - sent_ns[seq])
                    left = remaining[seq] - 1
                    remaining[seq] = left
                    if not left:
                        run.completed(seq)
                    pos = end
                    continue
            self._other_frame(data[pos], bytes(data[start:end]))
            pos = end
        if pos < size:
            self.pending = bytes(data[pos:size])

    def arrived(self, seq: int) -> bool:
        """A message other than the next one: count a repeat (False: not a delivery) or
        the gap before it (its slots freed, so a lost delivery cannot stall the loop)."""
        if seq < self.expect:
            self.repeats += 1
            return False
        self.gaps += seq - self.expect
        self.run.skipped(self.expect, seq)
        self.expect = seq + 1
        return True

    # -- setup and rare frames ---------------------------------------------------

    def _upgrade(self, data: bytes) -> bytes:
        try:
            parsed = parse_response(data)
            if isinstance(parsed, NeedData):
                self.pending = data
                return b""
            response, used = parsed
            check_response(response, self.key)
        except HandshakeError as exc:
            self._fail(f"o servidor recusou o handshake da sessão {self.user}: {exc}")
            self.transport.abort()
            return b""
        self.upgraded = True
        if self.run.kind == "wslab":
            hello = {"type": "hello", "user": self.user, "secret": SECRET, "resume": None}
            self.send_text(json.dumps(hello).encode())
        return data[used:]

    def _other_frame(self, head: int, payload: bytes) -> None:
        opcode = head & 0x0F
        if opcode == Opcode.PING:
            self.write(Frame(Opcode.PONG, payload).encode(mask=new_mask()))
        elif opcode == Opcode.CLOSE:
            self.closed = True
            self._fail(
                f"o servidor fechou a sessão {self.user}: {payload[2:].decode(errors='replace')!r}"
            )
        elif opcode == Opcode.TEXT and head & 0x80:
            self._setup_text(payload)
        elif opcode != Opcode.PONG:
            self.run.note_unexpected(f"frame with opcode {opcode} and FIN={head >> 7}")

    def _setup_text(self, payload: bytes) -> None:
        kind = self.run.kind
        if kind in SOCKETIO_KINDS:
            if payload == b"2":  # Engine.IO ping
                self.send_text(b"3")
            elif payload.startswith(b"0{"):  # Engine.IO open: connect to the default namespace
                self.send_text(b'40{"user":"' + self.user.encode() + b'"}')
            elif payload.startswith(b"40"):
                self._ready()
            elif payload.startswith(b"44"):
                self._fail(
                    f"o socket.io recusou a sessão {self.user}: {payload.decode(errors='replace')}"
                )
            else:
                self.run.note_unexpected(payload[:80].decode(errors="replace"))
            return
        try:
            obj = json.loads(payload)
        except ValueError:
            obj = None
        kind_of = obj.get("type") if isinstance(obj, dict) else None
        if kind_of in ("welcome", "ready"):
            self._ready()
        elif kind_of == "error":
            self._fail(f"o servidor respondeu erro à sessão {self.user}: {obj.get('text')}")
        else:
            self.run.note_unexpected(payload[:80].decode(errors="replace"))

    def _ready(self) -> None:
        if not self.ready.done():
            self.ready.set_result(None)

    def _fail(self, reason: str) -> None:
        if not self.ready.done():
            self.ready.set_exception(SetupError(reason))
        else:
            self.run.note_unexpected(reason)

    def send_text(self, payload: bytes) -> None:
        self.write(Frame(Opcode.TEXT, payload).encode(mask=new_mask()))

    def write(self, frame: bytes) -> None:
        """Write through asyncio during setup, straight to the socket while pumping."""
        if self.sock is None:
            self.transport.write(frame)
        elif self.sock.send(frame) != len(frame):  # a few hundred bytes: never partial
            raise SetupError(f"o buffer de envio da sessão {self.user} encheu")


class ClusterSession(Session):
    """A session of a run on several nodes, whose senders' messages may interleave.

    ``expect`` is, as in :class:`Session`, the lowest message not yet seen while
    nothing has arrived ahead of it (so the fast path stays the same), and -1 while
    something has: every arrival then comes here. ``prefix`` is the lowest message not
    yet seen (or counted lost), ``ahead`` what arrived (or was counted lost) above it,
    ``next_of[s]`` the next message sender ``s`` must deliver.
    """

    __slots__ = ("prefix", "ahead", "next_of", "lost", "reordered", "order")

    def __init__(self, run: Run, index: int) -> None:
        super().__init__(run, index)
        self.prefix = 0
        self.ahead: set[int] = set()
        self.next_of: list[int] = []
        self.lost: set[int] = set()  # counted in gaps; may still arrive late
        self.reordered = 0  # arrived after a later message of the same sender
        self.order = 0

    def arrived(self, seq: int) -> bool:
        senders = len(self.run.ports)
        ahead = self.ahead
        if self.expect >= 0:  # from the fast path: everything below expect has arrived
            prefix = self.prefix = self.expect
            self.next_of = [prefix + (s - prefix) % senders for s in range(senders)]
        prefix = self.prefix
        self.order = (self.order * ORDER_BASE + seq * 7919 + prefix) % ORDER_MODULUS
        if seq < prefix or seq in ahead:
            if seq in self.lost:  # late, not lost: its slot was already freed
                self.lost.discard(seq)
                self.gaps -= 1
                self.reordered += 1
            else:
                self.repeats += 1
            self.expect = -1 if ahead else prefix
            return False
        first = self.next_of[seq % senders]
        for missing in range(first, seq, senders):  # the sender's earlier ones: lost so far
            self.lost.add(missing)
            ahead.add(missing)
            self.gaps += 1
            self.run.skipped(missing, missing + 1)
        self.next_of[seq % senders] = seq + senders
        ahead.add(seq)
        while prefix in ahead:
            ahead.remove(prefix)
            prefix += 1
        self.prefix = prefix
        self.expect = -1 if ahead else prefix
        return True

    def fingerprint(self) -> int:
        """The session's delivery order (with how far it got), as one number."""
        final = self.prefix if self.expect < 0 else self.expect
        return (self.order * ORDER_BASE + final) % ORDER_MODULUS


class Run:
    """The closed loop: what was sent when, how many sessions each message still misses."""

    def __init__(
        self,
        kind: str,
        host: str,
        port: int | Sequence[int],
        sessions: int,
        window: int,
        text_bytes: int,
        *,
        cluster: bool = False,
    ) -> None:
        """``port``: one node's, or one per node (session i on node ``i % nodes``);
        ``cluster``: sessions are :class:`ClusterSession` (one sender per node)."""
        ports = (port,) if isinstance(port, int) else tuple(port)
        if not ports:
            raise ValueError("é preciso ao menos uma porta")
        if len(ports) > 1 and not cluster:
            raise ValueError("várias portas (vários nós) só com cluster=True")
        if sessions < max(2, len(ports)):
            raise ValueError(
                "são precisas pelo menos 2 sessões, e uma por nó (uma envia, todas recebem)"
            )
        if window < 1:
            raise ValueError("a janela precisa ter pelo menos 1 mensagem em voo")
        self.loop = asyncio.get_running_loop()
        self.kind, self.host, self.ports = kind, host, ports
        self.session_class = ClusterSession if cluster else Session
        self.n = sessions
        self.window = window
        self.template = sender_templates(kind, "u0", text_bytes)
        self.per_seq_slots = self.template.count("%")
        self.sent_ns: list[int] = []  # by sequence number: when it was written
        self.remaining: list[int] = []  # by sequence number: sessions still to receive it
        self.latencies = array("q")  # one per delivery, in the order they were read
        self.done = 0  # messages that reached all sessions
        self.sending = False
        self.sessions: list[Session] = []
        self.unexpected: list[str] = []
        self.unexpected_count = 0
        self.closing = False
        self.buffer = bytearray(256 * 1024)  # every session reads into it (one thread)

    def note_unexpected(self, what: str) -> None:
        if self.closing:
            return
        self.unexpected_count += 1
        if len(self.unexpected) < 5:
            self.unexpected.append(what)

    def send_next(self) -> None:
        seq = len(self.sent_ns)
        payload = (self.template % ((seq,) * self.per_seq_slots)).encode()
        self.remaining.append(self.n)
        self.sent_ns.append(time.perf_counter_ns())
        self.sessions[seq % len(self.ports)].send_text(payload)

    def skipped(self, first: int, stop: int) -> None:
        """A session saw message ``stop`` before ``first``..``stop - 1``: count those as done
        for it (as lost, in its ``gaps``), so a lost delivery cannot stall the window."""
        for seq in range(first, stop):
            self.remaining[seq] -= 1
            if not self.remaining[seq]:
                self.completed(seq)

    def completed(self, seq: int) -> None:
        self.done += 1
        if self.sending:
            self.send_next()

    async def open_sessions(self, timeout: float) -> float:
        """Open and register all sessions, a few at a time; return the seconds it took."""
        start = time.perf_counter()
        gate = asyncio.Semaphore(CONNECT_CONCURRENCY)

        async def open_one(index: int) -> None:
            async with gate:
                session = self.session_class(self, index)
                self.sessions[index] = session
                await self.loop.create_connection(lambda: session, self.host, session.port)
                await session.ready

        self.sessions = [None] * self.n  # type: ignore[list-item]
        tasks = [asyncio.ensure_future(open_one(i)) for i in range(self.n)]
        try:
            await asyncio.wait_for(asyncio.gather(*tasks), timeout)
        except TimeoutError:
            opened = sum(1 for s in self.sessions if s is not None and s.ready.done())
            raise SetupError(
                f"só {opened} de {self.n} sessões ficaram prontas em {timeout:g} s"
            ) from None
        except OSError as exc:
            ports = ", ".join(map(str, self.ports))
            raise SetupError(f"não consegui conectar a {self.host}:{ports}: {exc}") from None
        finally:
            for t in tasks:
                t.cancel()
        return time.perf_counter() - start

    def measure(
        self,
        warmup: float,
        duration: float,
        drain_timeout: float,
        stall_timeout: float,
        server_pids: Sequence[int],
    ) -> dict:
        """Run the closed loop: warm up, measure, stop sending and drain.

        Returns the measured fields of a :class:`RunRecord`, plus ``pid_cpu`` (the
        CPU share of each of ``server_pids``); the server's CPU and memory are those
        of all ``server_pids`` together.

        The warm-up lasts until a first message has reached every session, and the
        measurement until at least ``window`` more have (a slow server at 10,000
        sessions may need longer than ``warmup`` or ``duration`` for one fan-out);
        a stall of ``stall_timeout`` seconds ends either with an error.

        Called once every session is ready. From here on this process does nothing
        but this loop, so it leaves asyncio: each session's socket is taken off the
        event loop and polled with one ``select.epoll`` of our own, read with
        ``recv_into`` into the shared buffer. That spares the event loop's work per
        readable socket (a handle, a context switch into the callback), which on
        this workload cost as much as reading and parsing the frame.
        """
        self._detach()
        try:
            self.sending = True
            for _ in range(self.window):
                self.send_next()
            self._pump(warmup, stall_timeout)
            while not self.done:  # at 10,000 sessions one fan-out may outlast the warm-up
                self._pump(warmup, stall_timeout)
            i0, done0, t0 = len(self.latencies), self.done, time.perf_counter_ns()
            cpu0, srv0, sys0 = (
                time.process_time(),
                [procfs.cpu_seconds(pid) for pid in server_pids],
                procfs.machine_cpu_seconds(),
            )
            self._pump(duration, stall_timeout)
            while self.done - done0 < self.window:  # measure whole fan-outs, at least a window's
                self._pump(duration / 4, stall_timeout)
            i1, done1, t1 = len(self.latencies), self.done, time.perf_counter_ns()
            cpu1, srv1, sys1 = (
                time.process_time(),
                [procfs.cpu_seconds(pid) for pid in server_pids],
                procfs.machine_cpu_seconds(),
            )
            rss_load = _total(procfs.memory_bytes(pid) for pid in server_pids)
            rss_peak = _total(procfs.memory_bytes(pid, "VmHWM") for pid in server_pids)
            self.sending = False
            self._pump(drain_timeout, drain_timeout, until_drained=True)
        finally:
            self._reattach()
        elapsed = (t1 - t0) / 1e9
        loadgen_cpu = (cpu1 - cpu0) / elapsed
        pid_cpu = [
            None if a is None or b is None else (b - a) / elapsed
            for a, b in zip(srv0, srv1, strict=True)
        ]
        server_cpu = _total(pid_cpu)
        other_cpu = steal = None
        if sys0 is not None and sys1 is not None and server_cpu is not None:
            other_cpu = max(0.0, (sys1[0] - sys0[0]) / elapsed - loadgen_cpu - server_cpu)
            steal = (sys1[1] - sys0[1]) / elapsed
        window = sorted(self.latencies[i0:i1])
        if not window:
            raise SetupError(
                f"nenhuma entrega em {duration:g} s de medida: o servidor parou de entregar"
            )
        return {
            "deliveries": i1 - i0,
            "seconds": elapsed,
            "deliveries_per_s": (i1 - i0) / elapsed,
            "messages_per_s": (done1 - done0) / elapsed,
            "p50_ms": _quantile(window, 0.50) / 1e6,
            "p90_ms": _quantile(window, 0.90) / 1e6,
            "p99_ms": _quantile(window, 0.99) / 1e6,
            "max_ms": window[-1] / 1e6,
            "loadgen_cpu": loadgen_cpu,
            "server_cpu": server_cpu,
            "other_cpu": other_cpu,
            "steal_cpu": steal,
            "rss_load_bytes": rss_load,
            "rss_peak_bytes": rss_peak,
            "messages_sent": len(self.sent_ns),
            "messages_complete": self.done,
            "missing_deliveries": sum(self.remaining),
            "gaps": sum(s.gaps for s in self.sessions),
            "repeats": sum(s.repeats for s in self.sessions),
            "sessions_closed": sum(1 for s in self.sessions if s.closed),
            "frame_bytes": self.sessions[-1].frame_bytes,
            "unexpected_frames": self.unexpected_count,
            "unexpected_examples": list(self.unexpected),
            "pid_cpu": pid_cpu,
        }

    def orders(self) -> dict:
        """Of a cluster run: the distinct delivery orders the sessions saw, the sessions
        outside the commonest one, and the deliveries that came after a later message of
        the same sender (each is also a delivery that did not count in ``deliveries``)."""
        counts = collections.Counter(s.fingerprint() for s in self.sessions)
        return {
            "orders": len(counts),
            "sessions_off_order": self.n - counts.most_common(1)[0][1],
            "reordered": sum(s.reordered for s in self.sessions),
        }

    def _detach(self) -> None:
        self._epoll = select.epoll(len(self.sessions))
        self._readers = {}
        for session in self.sessions:
            session.transport.pause_reading()
            fd = session.transport.get_extra_info("socket").fileno()
            # The same file descriptor in a socket object of our own (no dup: at
            # 10,000 sessions a second descriptor each would pass the usual limit
            # of 20,000); _reattach detaches it, so the transport still owns it.
            session.sock = socket.socket(fileno=fd)
            self._readers[fd] = (session.sock.recv_into, session.feed, session)
            self._epoll.register(fd, select.EPOLLIN)

    def _reattach(self) -> None:
        self._epoll.close()
        for session in self.sessions:
            if session.sock is not None:
                session.sock.detach()
                session.sock = None

    def _pump(self, seconds: float, stall_timeout: float, *, until_drained: bool = False) -> None:
        """Read every socket that has data, for ``seconds`` (or until nothing is in flight).

        Raises SetupError if no message reaches all sessions for ``stall_timeout``
        seconds, or a session's socket fails.
        """
        clock = time.perf_counter_ns
        poll = self._epoll.poll
        readers = self._readers
        buffer = self.buffer
        end = clock() + int(seconds * 1e9)
        last_done, last_change = self.done, clock()
        stall_ns = int(stall_timeout * 1e9)
        while True:
            now = clock()
            if now >= end or (until_drained and self.done == len(self.sent_ns)):
                return
            if self.done != last_done:
                last_done, last_change = self.done, now
            elif now - last_change > stall_ns:
                if until_drained:
                    return  # what is still missing is reported as missing deliveries
                waiting = len(self.sent_ns) - self.done
                raise SetupError(
                    f"nenhuma mensagem chegou a todas as sessões em {stall_timeout:g} s "
                    f"({waiting} em voo, {sum(self.remaining)} entregas faltando): "
                    f"entregas perdidas ou servidor travado"
                )
            for fd, _ in poll(0.05):
                recv_into, feed, session = readers[fd]
                try:
                    nbytes = recv_into(buffer)
                except BlockingIOError:
                    continue
                except OSError as exc:
                    nbytes, session.closed = 0, True
                    self.note_unexpected(f"{session.user}: {exc}")
                if nbytes:
                    feed(nbytes, clock())
                else:  # the server closed the connection: stop polling it
                    session.closed = True
                    self._epoll.unregister(fd)
                    self.note_unexpected(f"the server closed {session.user}'s connection")

    def close(self) -> None:
        self.closing = True
        for s in self.sessions:
            if s is not None and s.transport is not None:
                s.transport.abort()


def _total(values) -> float | None:
    """The sum, or None if any is None (a process /proc could not read)."""
    values = list(values)
    return None if not values or any(v is None for v in values) else sum(values)


def _quantile(ordered: Sequence[int], q: float) -> float:
    """Nearest-rank quantile of an already sorted sequence."""
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


async def _main(args: argparse.Namespace) -> str:
    """Run and return what to print: the record, or with --cluster the record and more."""
    run = Run(
        args.kind,
        args.host,
        args.port,
        args.sessions,
        args.window,
        args.text_bytes,
        cluster=args.cluster,
    )
    pids = args.server_pid
    rss_base = _total(procfs.memory_bytes(pid) for pid in pids)
    try:
        setup_s = await run.open_sessions(args.setup_timeout)
        await asyncio.sleep(IDLE_SETTLE)
        rss_idle = _total(procfs.memory_bytes(pid) for pid in pids)
        figures = run.measure(
            args.warmup, args.duration, args.drain_timeout, args.stall_timeout, pids
        )
    finally:
        run.close()
    pid_cpu = figures.pop("pid_cpu")
    record = RunRecord(
        server=args.kind,
        sessions=args.sessions,
        window=args.window,
        text_bytes=args.text_bytes,
        setup_s=setup_s,
        rss_base_bytes=rss_base,
        rss_idle_bytes=rss_idle,
        **figures,
    )
    if not args.cluster:
        return record.to_json()
    cluster = {"pid_cpu": pid_cpu, "ports": list(run.ports)} | run.orders()
    return json.dumps({"run": dataclasses.asdict(record), "cluster": cluster})


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("kind", choices=ALL_KINDS)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument(
        "--port", type=int, nargs="+", required=True, help="one per node (several: --cluster)"
    )
    parser.add_argument("--sessions", type=int, required=True)
    parser.add_argument("--window", type=int, default=8, help="messages in flight")
    parser.add_argument(
        "--text-bytes", type=int, default=64, help="characters of each message's text"
    )
    parser.add_argument("--warmup", type=float, default=1.0, help="seconds before measuring")
    parser.add_argument("--duration", type=float, default=5.0, help="seconds measured")
    parser.add_argument("--setup-timeout", type=float, default=60.0)
    parser.add_argument("--drain-timeout", type=float, default=10.0)
    parser.add_argument("--stall-timeout", type=float, default=10.0)
    parser.add_argument(
        "--server-pid",
        type=int,
        action="append",
        default=[],
        help="read its CPU time and memory from /proc (repeat for every server process)",
    )
    parser.add_argument(
        "--cluster",
        action="store_true",
        help="several nodes: one sender per node, the order checked across senders",
    )
    parser.add_argument("--cpu", type=int, default=None, help="pin the process to this CPU")
    args = parser.parse_args(argv)
    prepare_process(args.cpu)
    try:
        result = asyncio.run(_main(args))
    except (SetupError, ValueError) as exc:
        print(f"erro: {exc}", file=sys.stderr)
        return 1
    print(result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
