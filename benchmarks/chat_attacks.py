"""The chat server under attack, beside a bystander: what each attack costs it.

``python -m benchmarks.chat_attacks`` starts a real ``python -m wslab.chat serve``
process (SQLite history prefilled, so a resume from offset 0 has megabytes to replay)
for each class of attack of issue 10, runs a bounded attacker against it (loopback
only, bounded in connections and in time, it stops by itself) while a bystander on
another loopback address sends a line every 100 ms, and prints one row per attack:
the bystander's echo times (p50/p99/max, ms), the server's RSS (MiB: before, peak,
after, from /proc), the refusals the attacker saw and the log lines the server wrote.
The JSON goes to ``benchmarks/results/chat_attacks.json``.

What to read in the table (the figures the tests once asserted, now measured here):
the bystander's slowest echo under each attack (the tests wanted it under 1 s beside
``ping_flood``, ``resume_flood``, ``slow_handshake`` and ``mixed``), and the peak RSS
minus the RSS before (the tests wanted under 8 x 1 MiB + 10 MiB for 8 ping flooders,
each bounded by its unread limit, and under 300 MiB for the mixed attack). "Before" is
read, and the peak started again, once the bystander's session is open: the 16 MiB
its login's scrypt takes for a moment are not the attack's. Attackers that register
names (half the ping flooders, the registration flood) still cost a scrypt each, up to
2 at once (32 MiB, kept by the allocator); ``--kdf-n 1024``, the tests' cost, leaves
only what the attack itself holds.

The attackers, the server process and the bystander live here so the tests
(``tests/chat/process/test_attacks.py``) run the very same attacks, with assertions
about behaviour instead of a table of figures.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import re
import resource
import select
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from websockets.exceptions import ConnectionClosed, InvalidHandshake
from websockets.sync.client import connect

from wslab.protocol.handshake import build_request, generate_key

BYSTANDER_ADDRESS = "127.0.0.200"  # another host: per-address limits are not its problem
BYSTANDER_IN = f"bia de {BYSTANDER_ADDRESS}"  # in the server's log once its session opens
SECRET = "segredo-do-bystander"
RESULTS = Path(__file__).parent / "results" / "chat_attacks.json"

# -- the server process ----------------------------------------------------------------


class Served:
    """A ``python -m wslab.chat serve`` process on an ephemeral port; its stderr (the
    log) is collected line by line. ``files`` lowers its limit of open descriptors."""

    def __init__(self, *args: str, db: str = ":memory:", files: int | None = None) -> None:
        self.args = ["--port", "0", "--db", db, *args]
        self.files = files
        self.lines: list[str] = []
        self.port = 0
        self.process: subprocess.Popen | None = None
        self._reader: threading.Thread | None = None

    def __enter__(self) -> Served:
        def limit() -> None:
            if self.files:
                resource.setrlimit(resource.RLIMIT_NOFILE, (self.files, self.files))

        self.process = subprocess.Popen(
            [sys.executable, "-m", "wslab.chat", "serve", *self.args],
            stderr=subprocess.PIPE,
            text=True,
            preexec_fn=limit,
        )
        ready, _, _ = select.select([self.process.stderr], [], [], 20)
        first = self.process.stderr.readline() if ready else ""
        while first and "servindo o chat" not in first:
            self.lines.append(first)
            first = self.process.stderr.readline()
        found = re.search(r"http://127\.0\.0\.1:(\d+)/", first)
        if found is None:
            self.process.kill()
            raise RuntimeError(f"the server did not start: {self.lines + [first]}")
        self.lines.append(first)
        self.port = int(found.group(1))
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        return self

    def _read(self) -> None:
        for line in self.process.stderr:
            self.lines.append(line)

    def __exit__(self, *exc_info) -> None:
        """Stop the server (SIGTERM, then SIGKILL after 15 s); once this returns,
        :meth:`log` holds every line it wrote."""
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._reader.join(timeout=15)  # the rest of the pipe, up to its end

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    def log(self) -> str:
        return "".join(self.lines)

    def wait_for(self, text: str, within: float = 20.0) -> None:
        """Return once the log holds ``text`` (RuntimeError after ``within`` s)."""
        deadline = time.monotonic() + within
        while text not in self.log():
            if time.monotonic() > deadline:
                raise RuntimeError(f"the server did not log {text!r} within {within:g} s")
            time.sleep(0.05)

    def memory(self, field: str = "VmRSS") -> float:
        """MiB of the process's ``VmRSS`` (now) or ``VmHWM`` (peak so far)."""
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        return int(re.search(rf"{field}:\s+(\d+) kB", status).group(1)) / 1024

    def reset_peak(self) -> None:
        """Start ``VmHWM`` again from the RSS now (Linux's ``clear_refs``, value 5), so
        a peak read later is the peak since this call."""
        Path(f"/proc/{self.process.pid}/clear_refs").write_text("5")


def prefill(path: str, count: int, size: int, retention: int = 1000) -> None:
    """Write ``count`` public messages of ``size`` characters to a new SQLite chat db."""
    from wslab.chat.rules.messages import Kind
    from wslab.chat.stores.sqlite import SqliteStore

    async def fill() -> None:
        store = SqliteStore(path, retention)
        await store.log.start(lambda messages: None)
        text = "h" * size
        for start in range(0, count, 100):
            await asyncio.gather(
                *(
                    store.log.append(Kind.PUBLIC, "historia", None, text)
                    for _ in range(min(100, count - start))
                )
            )
        await store.log.close()
        await store.close()

    asyncio.run(fill())


# -- clients -----------------------------------------------------------------------------


def hello_frame(user: str, secret: str = "s", resume: tuple[str, int] | None = None) -> str:
    point = None if resume is None else {"epoch": resume[0], "offset": resume[1]}
    return json.dumps({"type": "hello", "user": user, "secret": secret, "resume": point})


def masked(opcode: int, payload: bytes) -> bytes:
    """A client frame (FIN set, zero mask, so the payload goes as is)."""
    n = len(payload)
    if n < 126:
        head = bytes([0x80 | opcode, 0x80 | n])
    elif n < 65536:
        head = bytes([0x80 | opcode, 0x80 | 126]) + n.to_bytes(2, "big")
    else:
        head = bytes([0x80 | opcode, 0x80 | 127]) + n.to_bytes(8, "big")
    return head + b"\x00\x00\x00\x00" + payload


def raw_socket(
    port: int, address: str = "127.0.0.1", rcvbuf: int | None = None, timeout: float = 5.0
) -> socket.socket:
    raw = socket.socket()
    if rcvbuf:
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    raw.settimeout(timeout)
    raw.bind((address, 0))
    raw.connect(("127.0.0.1", port))
    return raw


def read_head(raw: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = raw.recv(4096)
        if not chunk:
            break
        data += chunk
    return data


def raw_session(
    port: int, user: str | None, address: str = "127.0.0.1", rcvbuf: int | None = 4096, resume=None
) -> socket.socket:
    """A socket past the handshake (and the hello, if ``user``) that reads nothing more.

    Raises:
        ConnectionError: the server refused the handshake (its status line says why).
    """
    raw = raw_socket(port, address, rcvbuf)
    raw.sendall(build_request(f"ws://127.0.0.1:{port}/ws", generate_key()))
    head = read_head(raw)
    if not head.startswith(b"HTTP/1.1 101"):
        raw.close()
        raise ConnectionError(head.split(b"\r\n", 1)[0].decode(errors="replace"))
    if user is not None:
        raw.sendall(masked(1, hello_frame(user, resume=resume).encode()))
    return raw


def rst_close(raw: socket.socket) -> None:
    """Close with a TCP reset, as a client that vanished."""
    with contextlib.suppress(OSError):
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    raw.close()


def ws_connect(port: int, address: str = "127.0.0.1", **options):
    """websockets' sync client from ``address``."""
    sock = raw_socket(port, address)
    return connect(
        f"ws://127.0.0.1:{port}/ws",
        sock=sock,
        open_timeout=5,
        close_timeout=1,
        legacy=True,
        **options,
    )


def refusal_of(ws) -> str:
    """What the server answered a hello with: 'welcome' or the close code."""
    try:
        frame = json.loads(ws.recv(timeout=5))
        return frame["type"]
    except ConnectionClosed as closed:
        return str(closed.rcvd.code) if closed.rcvd else "cortada"
    except TimeoutError:
        return "sem resposta"


def epoch_of(port: int) -> str:
    """The server's epoch (a login: under a flood of logins it may wait its turn)."""
    with ws_connect(port, "127.0.0.250") as ws:
        ws.send(hello_frame("epoca"))
        return json.loads(ws.recv(timeout=30))["epoch"]


# -- the bystander -----------------------------------------------------------------------


def bystander(port: int, seconds: float, interval: float = 0.1) -> dict:
    """Send a line every ``interval`` s for ``seconds`` and time its echo: the echo
    times (s; None for a line whose echo did not come within 5 s) and any error."""
    echoes: list[float | None] = []
    error = None
    try:
        with ws_connect(port, BYSTANDER_ADDRESS) as ws:
            ws.send(hello_frame("bia", SECRET))
            welcome = json.loads(ws.recv(timeout=10))
            if welcome["type"] != "welcome":
                raise RuntimeError(f"bystander refused: {welcome}")
            end = time.monotonic() + seconds
            n = 0
            while time.monotonic() < end:
                n += 1
                text = f"eco {n}"
                sent = time.monotonic()
                ws.send(json.dumps({"type": "say", "text": text}))
                echo = None
                while echo is None and time.monotonic() - sent < 5:
                    try:
                        frame = json.loads(ws.recv(timeout=5))
                    except TimeoutError:
                        break
                    if frame.get("from") == "bia" and frame.get("text") == text:
                        echo = time.monotonic() - sent
                    elif frame.get("type") == "error":
                        break  # refused: counts as no echo
                echoes.append(echo)
                time.sleep(max(0.0, interval - (time.monotonic() - sent)))
    except Exception as failure:  # reported in the result, never raised
        echoes.append(None)
        error = repr(failure)
    return {"echoes": echoes, "error": error}


class Bystander:
    """:func:`bystander` in its own process, so the attackers' threads (and their GIL)
    never delay its timing; ``echoes()`` waits for its result."""

    def __init__(self, port: int, seconds: float) -> None:
        root = str(Path(__file__).resolve().parent.parent)
        self.command = [
            sys.executable,
            "-m",
            "benchmarks.chat_attacks",
            "--bystander",
            str(port),
            str(seconds),
        ]
        self.env = {**os.environ, "PYTHONPATH": root}
        self.error: str | None = None
        self.process: subprocess.Popen | None = None

    def __enter__(self) -> Bystander:
        self.process = subprocess.Popen(
            self.command, stdout=subprocess.PIPE, text=True, env=self.env
        )
        return self

    def __exit__(self, *exc_info) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()

    def echoes(self) -> list[float | None]:
        out, _ = self.process.communicate(timeout=120)
        result = json.loads(out.strip().splitlines()[-1])
        self.error = result["error"]
        return result["echoes"]


# -- the attackers: each bounded in count and time, each returns the refusals it saw ------

Attack = Callable[[int, float], Counter]


def _threads(count: int, target: Callable[[int], None]) -> None:
    threads = [threading.Thread(target=target, args=(i,), daemon=True) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def ping_flood(port: int, seconds: float, sockets: int = 4) -> Counter:
    """Sockets (half logged in) that send pings as fast as they can and never read."""
    seen: Counter = Counter()
    ping = masked(9, b"p" * 125) * 200
    end = time.monotonic() + seconds

    def attack(i: int) -> None:
        try:
            raw = raw_session(port, f"pinga{i}" if i % 2 else None, f"127.0.1.{i % 4 + 1}")
        except OSError as error:
            seen[f"recusada: {error}"] += 1
            return
        raw.settimeout(0.2)
        while time.monotonic() < end:
            try:
                raw.sendall(ping)
            except TimeoutError:
                continue  # the server stopped reading us
            except OSError:
                seen["cortada"] += 1
                break
        rst_close(raw)

    _threads(sockets, attack)
    return seen


def resume_flood(port: int, seconds: float, clients: int = 30) -> Counter:
    """Clients resuming from offset 0 in a loop; odd ones never read what comes."""
    seen: Counter = Counter()
    epoch = epoch_of(port)
    end = time.monotonic() + seconds

    def attack(i: int) -> None:
        address = f"127.0.2.{i % 8 + 1}"
        while time.monotonic() < end:
            if i % 2:
                try:
                    raw = raw_session(port, f"retoma{i}", address, resume=(epoch, 0))
                except OSError as error:
                    seen[f"recusada: {error}"] += 1
                    time.sleep(0.2)
                    continue
                time.sleep(0.5)
                rst_close(raw)
                seen["não leu"] += 1
                continue
            try:
                with ws_connect(port, address, max_size=None) as ws:
                    ws.send(hello_frame(f"retoma{i}", resume=(epoch, 0)))
                    frames = 0
                    with contextlib.suppress(TimeoutError):
                        while time.monotonic() < end:
                            ws.recv(timeout=1)
                            frames += 1
                    seen["leu"] += 1
            except ConnectionClosed as closed:
                seen[str(closed.rcvd.code) if closed.rcvd else "cortada"] += 1
            except (OSError, InvalidHandshake) as error:
                seen[f"recusada: {type(error).__name__}"] += 1
                time.sleep(0.2)

    _threads(clients, attack)
    return seen


def reconnect_flood(port: int, seconds: float, lines: int = 40) -> Counter:
    """One user reconnecting in a loop, sending a burst of lines each time."""
    seen: Counter = Counter()
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            with ws_connect(port, "127.0.3.1") as ws:
                ws.send(hello_frame("rajada"))
                if refusal_of(ws) != "welcome":
                    seen["recusada"] += 1
                    continue
                for n in range(lines):
                    ws.send(json.dumps({"type": "say", "text": f"rajada {n}"}))
                got = 0
                with contextlib.suppress(TimeoutError):
                    while got < lines:
                        frame = json.loads(ws.recv(timeout=1))
                        if frame.get("type") == "error":
                            seen["linha recusada"] += 1
                            got += 1
                        elif frame.get("from") == "rajada":
                            seen["linha aceita"] += 1
                            got += 1
        except (OSError, ConnectionClosed, InvalidHandshake):
            seen["cortada"] += 1
    seen["linhas aceitas por s"] = round(seen["linha aceita"] / seconds)
    return seen


def brute_force(port: int, seconds: float, addresses: int = 4) -> Counter:
    """Guessing the bystander's secret, 0000, 0001, ..., from a few addresses."""
    seen: Counter = Counter()
    end = time.monotonic() + seconds
    guesses = iter(range(10_000))

    def attack(i: int) -> None:
        for guess in guesses:
            if time.monotonic() >= end:
                return
            try:
                with ws_connect(port, f"127.0.4.{i + 1}") as ws:
                    ws.send(hello_frame("bia", f"{guess:04d}"))
                    seen[refusal_of(ws)] += 1
            except (OSError, InvalidHandshake):
                seen["recusada"] += 1

    _threads(addresses, attack)
    return seen


def registration_flood(port: int, seconds: float, addresses: int = 2) -> Counter:
    """New names as fast as the server takes them."""
    seen: Counter = Counter()
    end = time.monotonic() + seconds

    def attack(i: int) -> None:
        n = 0
        while time.monotonic() < end and n < 5000:
            n += 1
            try:
                with ws_connect(port, f"127.0.5.{i + 1}") as ws:
                    ws.send(hello_frame(f"novo{i}x{n}"))
                    seen[refusal_of(ws)] += 1
            except (OSError, InvalidHandshake):
                seen["recusada"] += 1

    _threads(addresses, attack)
    return seen


def _open_quietly(port: int, address: str, seen: Counter, payload: bytes = b""):
    try:
        raw = raw_socket(port, address, timeout=0.5)
        if payload:
            raw.sendall(payload)
        return raw
    except OSError:
        seen["recusada no connect"] += 1
        return None


def _status_of(raw: socket.socket) -> str | None:
    """The HTTP status the server already answered with (a refusal), if any."""
    try:
        raw.setblocking(False)
        data = raw.recv(4096)
    except BlockingIOError:
        return None
    except OSError:
        return "cortada"
    finally:
        raw.setblocking(True)
    if not data:
        return "cortada"
    return data.split(b" ", 2)[1].decode() if data.startswith(b"HTTP/1.1") else "?"


def idle_flood(port: int, seconds: float, count: int = 600, addresses: int = 20) -> Counter:
    """TCP connections that send nothing, and WebSockets that never say hello."""
    seen: Counter = Counter()
    held = []
    end = time.monotonic() + seconds
    for i in range(count):
        if time.monotonic() >= end:
            break
        address = f"127.0.6.{i % addresses + 1}"
        if i % 2:
            raw = _open_quietly(port, address, seen)
        else:
            try:
                raw = raw_session(port, None, address, rcvbuf=None)
            except OSError as error:
                seen[f"ws recusada: {str(error)[:20]}"] += 1
                raw = None
        if raw is not None:
            held.append(raw)
    time.sleep(0.2)
    for raw in held:
        status = _status_of(raw)
        seen[status or "aberta"] += 1
    time.sleep(max(0.0, end - time.monotonic()))
    for raw in held:
        raw.close()
    return seen


def slow_handshake(port: int, seconds: float, sockets: int = 60, addresses: int = 3) -> Counter:
    """Clients sending their HTTP request one byte at a time (slowloris)."""
    seen: Counter = Counter()
    request = build_request(f"ws://127.0.0.1:{port}/ws", generate_key())
    end = time.monotonic() + seconds
    live: list[tuple[socket.socket, float]] = []
    for i in range(sockets):
        raw = _open_quietly(port, f"127.0.7.{i % addresses + 1}", seen)
        if raw is not None:
            live.append((raw, time.monotonic()))
    position = 0
    while live and time.monotonic() < end:
        position += 1
        for raw, opened in list(live):
            status = _status_of(raw)  # a refusal, or a cut, already there?
            if status is None:
                try:
                    raw.send(request[position % len(request) : position % len(request) + 1])
                except OSError:
                    status = "cortada"
            if status is not None:
                seen[status] += 1
                seen[f"cortada após {round(time.monotonic() - opened)} s"] += status == "cortada"
                live.remove((raw, opened))
                raw.close()
        time.sleep(0.2)
    seen["ainda aberta"] += len(live)
    for raw, _ in live:
        raw.close()
    return +seen


BAD_FRAMES = [
    "{malformed",
    '{"type": "say", "text": "\\ud800"}',
    "[" * 8100,
    '{"type": "say", "text": "\\u202eoi"}',
    '{"type": "say", "text": "\\u200b\\u200b"}',
    '{"type": "say", "text": "oi\\nbia: falso"}',
    '{"type": "dance"}',
]


def bad_frames(port: int, seconds: float) -> Counter:
    """A session sending bad frames as fast as it reads the answers."""
    seen: Counter = Counter()
    end = time.monotonic() + seconds
    with ws_connect(port, "127.0.8.1") as ws:
        ws.send(hello_frame("ruido"))
        if refusal_of(ws) != "welcome":
            return Counter({"recusada": 1})
        with contextlib.suppress(ConnectionClosed):
            while time.monotonic() < end:
                for frame in BAD_FRAMES:
                    ws.send(frame)
                for _ in BAD_FRAMES:
                    try:
                        seen[json.loads(ws.recv(timeout=0.5))["type"]] += 1
                    except TimeoutError:
                        seen["sem resposta (ritmo)"] += 1
                        break
    return seen


def log_flood(port: int, seconds: float) -> Counter:
    """Hellos whose names are 16,000 characters, or fake a second log line."""
    seen: Counter = Counter()
    end = time.monotonic() + seconds
    names = ["n" * 16_000, "ana\n2026-01-01 00:00:00 aberta s1 admin", "\x1b[31mvermelho"]
    n = 0
    while time.monotonic() < end and n < 5000:
        n += 1
        try:
            with ws_connect(port, "127.0.9.1") as ws:
                ws.send(hello_frame(names[n % len(names)]))
                seen[refusal_of(ws)] += 1
        except (OSError, InvalidHandshake):
            seen["recusada"] += 1
    return seen


def left_replay(port: int, seconds: float, clients: int = 4) -> Counter:
    """Clients that ask for a replay from offset 0 and vanish (TCP reset) at once."""
    seen: Counter = Counter()
    epoch = epoch_of(port)
    end = time.monotonic() + seconds

    def attack(i: int) -> None:
        while time.monotonic() < end:
            try:
                raw = raw_session(port, f"some{i}", f"127.0.10.{i + 1}", resume=(epoch, 0))
            except OSError:
                seen["recusada"] += 1
                time.sleep(0.1)
                continue
            time.sleep(0.02)
            rst_close(raw)
            seen["sumiu"] += 1

    _threads(clients, attack)
    return seen


SINGLE: tuple[Attack, ...] = (
    ping_flood,
    resume_flood,
    reconnect_flood,
    brute_force,
    registration_flood,
    idle_flood,
    slow_handshake,
    bad_frames,
    log_flood,
    left_replay,
)


def mixed(port: int, seconds: float) -> Counter:
    """Every attack above at once."""
    seen: Counter = Counter()

    def run(i: int) -> None:
        found = SINGLE[i](port, seconds)
        for key, value in found.items():
            seen[f"{SINGLE[i].__name__}: {key}"] += value

    _threads(len(SINGLE), run)
    return seen


ATTACKS: dict[str, Attack] = {f.__name__: f for f in (*SINGLE, mixed)}


# -- one run: an attack beside the bystander -----------------------------------------------


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def run_attack(
    name: str, seconds: float, db: str, *server_args: str, files: int | None = None
) -> dict:
    """One attack against a fresh server on a copy of ``db``, with the bystander."""
    with tempfile.TemporaryDirectory() as tmp:
        copy = os.path.join(tmp, "chat.db")
        with open(db, "rb") as source, open(copy, "wb") as target:
            target.write(source.read())
        with Served(*server_args, db=copy, files=files) as served:
            with Bystander(served.port, seconds + 2.0) as watcher:
                served.wait_for(BYSTANDER_IN)  # its login's scrypt is in "before"
                before, lines_before = served.memory(), len(served.lines)
                served.reset_peak()  # the peak of the attack, not of the logins before it
                refusals = ATTACKS[name](served.port, seconds)
                peak = served.memory("VmHWM")
                echoes = watcher.echoes()
            time.sleep(1.0)
            after = served.memory()
            log = served.lines[lines_before:]
    timed = [e for e in echoes if e is not None]
    return {
        "attack": name,
        "echoes": len(echoes),
        "lost_echoes": len(echoes) - len(timed),
        "echo_ms": {
            k: round(1000 * quantile(timed, q), 1) if timed else None
            for k, q in (("p50", 0.5), ("p99", 0.99), ("max", 1.0))
        },
        "rss_mib": {"before": round(before, 1), "peak": round(peak, 1), "after": round(after, 1)},
        "refusals": dict(refusals),
        "log_lines": len(log),
        "tracebacks": sum("Traceback" in line for line in log),
        "bystander_error": watcher.error,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=8.0, help="duration of each attack")
    parser.add_argument("--only", nargs="*", choices=sorted(ATTACKS), help="attacks to run")
    parser.add_argument("--history", type=int, default=1000, help="messages prefilled")
    parser.add_argument("--size", type=int, default=5800, help="characters per message")
    parser.add_argument("--files", type=int, default=1024, help="server's open files limit")
    parser.add_argument(
        "--kdf-n",
        help="the server's scrypt cost for new names (default: its own, 16 MiB a hash)",
    )
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument(
        "--bystander", nargs=2, type=float, metavar=("PORT", "SECONDS"), help=argparse.SUPPRESS
    )
    args = parser.parse_args(argv)
    if args.bystander:
        print(json.dumps(bystander(int(args.bystander[0]), args.bystander[1])))
        return 0
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        db = os.path.join(tmp, "history.db")
        prefill(db, args.history, args.size)
        # The bystander registers once, with the default KDF.
        with Served(db=db) as served, ws_connect(served.port, BYSTANDER_ADDRESS) as ws:
            ws.send(hello_frame("bia", SECRET))
            assert refusal_of(ws) == "welcome"
        for name in args.only or ATTACKS:
            kdf = ("--kdf-n", args.kdf_n) if args.kdf_n else ()
            row = run_attack(name, args.seconds, db, *kdf, files=args.files)
            rows.append(row)
            echo, rss = row["echo_ms"], row["rss_mib"]
            print(
                f"{name:20} eco p50/p99/max {echo['p50']}/{echo['p99']}/{echo['max']} ms "
                f"(sem eco {row['lost_echoes']}/{row['echoes']}) | RSS MiB "
                f"{rss['before']}/{rss['peak']}/{rss['after']} | log {row['log_lines']} "
                f"linhas, {row['tracebacks']} tracebacks | {row['refusals']}",
                flush=True,
            )
    report = {
        "command": "python -m benchmarks.chat_attacks"
        + "".join(f" {a}" for a in (argv if argv is not None else sys.argv[1:])),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, shared and loaded",
        "python": platform.python_version(),
        "seconds": args.seconds,
        "history": args.history,
        "size": args.size,
        "rows": rows,
    }
    args.out.write_text(json.dumps(report, indent=1, ensure_ascii=False) + "\n")
    print(f"escrito {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
