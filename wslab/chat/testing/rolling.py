"""A rolling restart under traffic, for the tests and notebook 07: a crowd of chat users
talking through one URL (a proxy in front of several nodes) while each node in turn is
drained (SIGTERM), started again and waited for, and a record of what every user got.

:class:`Crowd` runs its users on one asyncio loop in a background thread (websockets'
client; 50 users saying 2 lines per second each, so reading 5,000 frames per second over
TLS, took about a quarter of one core of this process, measured on the 2-core machine).
Each user connects from an address of its own (``127.0.0.N``: the node, behind a
trusted proxy, sees a different client for each), says a line every ``interval``
seconds while the crowd talks, reads everything, and after any close resumes from the
last offset it received, as the browser client does. It records what a test asserts
and the chapter plots: each message received (offset, text), the ones it
acknowledged (its own lines, echoed), whether each resume was recovered, and each time
away (from the close to the next welcome).

:func:`restart` drains one :class:`~.serve.ServeProcess` with SIGTERM, starts it again
on the same port and waits until its ``/readyz`` answers 200; :class:`Timeline`
keeps when each step happened. Every wait is bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import json
import random
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from .serve import ServeProcess

__all__ = ["Crowd", "Talker", "Timeline", "readyz", "restart", "until"]

WAIT = 5.0  # seconds for one connection to open, or for a welcome to come
RETRY = 0.1  # seconds between two attempts to connect (the browser's first backoff)
Resume = dict[str, str | int]  # the hello's resume point: {"epoch": ..., "offset": ...}


def until(check: Callable[[], object], within: float = 10.0, what: str = "") -> object:
    """Poll ``check()`` every 20 ms until it returns a true value; that value.

    Raises:
        TimeoutError: not true within ``within`` seconds (``what`` says what).
    """
    deadline = time.monotonic() + within
    while not (value := check()):
        if time.monotonic() > deadline:
            raise TimeoutError(f"not within {within:g} s: {what or check}")
        time.sleep(0.02)
    return value


@dataclass
class Talker:
    """One user of the crowd and what it saw (appended to by the crowd's thread)."""

    user: str
    source: str  # the local address its sockets are bound to
    seen: list[tuple[int, str]] = field(default_factory=list)  # every message, in order
    acked: list[tuple[int, str]] = field(default_factory=list)  # its own lines, echoed
    resumes: list[bool] = field(default_factory=list)  # recovered, per resume
    notices: list[str] = field(default_factory=list)  # system and error texts
    away: list[tuple[float, float]] = field(default_factory=list)  # (closed, welcomed)
    closes: list[int | None] = field(default_factory=list)  # close codes received
    failures: list[str] = field(default_factory=list)  # attempts that got no welcome
    sent: int = 0
    welcomed: bool = False

    def missing(self, acked: set[tuple[int, str]]) -> int:
        """How many of ``acked`` this user has not received."""
        return len(acked - set(self.seen))


class Crowd:
    """``count`` users (``u0``, ``u1``, ...) of the chat at ``url``, on a background loop.

    Args:
        url: the WebSocket URL (``wss://`` through a proxy, or a node's ``ws://``).
        count: how many users; user ``i`` binds its sockets to ``127.0.0.{first + i}``.
        ssl_context: for ``wss://``; trusting the proxy's certificate.
        interval: seconds between two lines of one user while the crowd talks (each
            user starts at a random point of its first interval: ``seed``).
        prefix: the users' names are ``prefix + i``.

    Use as a context manager (:meth:`start`, :meth:`stop`).
    """

    def __init__(
        self,
        url: str,
        count: int,
        *,
        ssl_context: ssl.SSLContext | None = None,
        interval: float = 0.5,
        first: int = 20,
        prefix: str = "u",
        seed: int = 7,
    ) -> None:
        if not (count > 0 and first + count <= 255):
            raise ValueError(
                f"a crowd starting at 127.0.0.{first} has room for 1 to {255 - first} users"
            )
        self.url, self.ssl_context, self.interval = url, ssl_context, interval
        self.talkers = [Talker(f"{prefix}{i}", f"127.0.0.{first + i}") for i in range(count)]
        self._random = random.Random(seed)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._talking: asyncio.Event | None = None
        self._done: asyncio.Event | None = None
        self._tasks: list[asyncio.Task[None]] = []

    # -- from the caller's thread ------------------------------------------------------

    def start(self) -> Crowd:
        """Start the loop thread and every user (they log in and listen)."""
        started = threading.Event()

        def run() -> None:
            loop = self._loop = asyncio.new_event_loop()
            self._talking, self._done = asyncio.Event(), asyncio.Event()
            self._tasks = [loop.create_task(self._run(t)) for t in self.talkers]
            started.set()
            loop.run_until_complete(asyncio.gather(*self._tasks, return_exceptions=True))
            loop.close()

        self._thread = threading.Thread(target=run, name="wslab-crowd", daemon=True)
        self._thread.start()
        started.wait(WAIT)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Every user closes its connection; the thread ends (bounded)."""
        loop, done, thread = self._loop, self._done, self._thread
        if loop is not None and done is not None and thread is not None and thread.is_alive():
            loop.call_soon_threadsafe(done.set)
            thread.join(timeout)

    def __enter__(self) -> Crowd:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def talk(self, on: bool = True) -> None:
        """Start (or stop) every user saying a line every ``interval`` seconds."""
        event = self._talking
        assert self._loop is not None and event is not None  # start() made them
        self._loop.call_soon_threadsafe(event.set if on else event.clear)

    def wait_welcomed(self, within: float = 30.0) -> None:
        """Until every user has had its first welcome."""
        until(lambda: all(t.welcomed for t in self.talkers), within, "every user welcomed")

    def acked(self) -> set[tuple[int, str]]:
        """Every (offset, text) some user has acknowledged so far."""
        return {message for t in self.talkers for message in list(t.acked)}

    def wait_acked(self, more: int, within: float = 30.0) -> None:
        """Until ``more`` messages beyond those acknowledged now are acknowledged."""
        target = len(self.acked()) + more
        until(lambda: len(self.acked()) >= target, within, f"{target} messages acknowledged")

    def wait_received(self, messages: set[tuple[int, str]], within: float = 30.0) -> None:
        """Until every user has received every one of ``messages``.

        Raises:
            TimeoutError: naming the users still missing some, and how many.
        """
        try:
            until(lambda: not any(t.missing(messages) for t in self.talkers), within)
        except TimeoutError:
            behind = [(t.user, t.missing(messages)) for t in self.talkers if t.missing(messages)]
            raise TimeoutError(f"{len(behind)} users missing messages: {behind[:8]}") from None

    # -- in the crowd's thread ---------------------------------------------------------

    async def _run(self, talker: Talker) -> None:
        resume: Resume | None = None
        left: float | None = None  # when the last session closed
        assert self._done is not None  # start() made it before this task
        while not self._done.is_set():
            try:
                async with connect(
                    self.url,
                    ssl=self.ssl_context,
                    local_addr=(talker.source, 0),
                    open_timeout=WAIT,
                    close_timeout=1,
                ) as ws:
                    hello = {"type": "hello", "user": talker.user, "secret": "s", "resume": resume}
                    await ws.send(json.dumps(hello))
                    welcome = json.loads(await asyncio.wait_for(ws.recv(), WAIT))
                    if welcome.get("type") != "welcome":
                        raise ValueError(f"no welcome: {welcome}")
                    if left is not None:
                        talker.away.append((left, time.monotonic()))
                    if resume is not None:
                        talker.resumes.append(welcome["recovered"])
                    talker.welcomed = True
                    try:
                        resume = await self._session(talker, ws, welcome["epoch"], resume)
                    finally:
                        left = time.monotonic()
                    talker.closes.append(ws.close_code)
            except (OSError, TimeoutError, InvalidHandshake, ConnectionClosed, ValueError) as error:
                talker.failures.append(f"{type(error).__name__}: {error}"[:120])
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._done.wait(), RETRY)

    async def _session(
        self, talker: Talker, ws: ClientConnection, epoch: str, resume: Resume | None
    ) -> Resume | None:
        """Read (and talk) until the connection closes or the crowd stops; the resume
        point to use next."""
        assert self._done is not None  # start() made it before this task
        speaker = asyncio.get_running_loop().create_task(self._speak(talker, ws))
        done = asyncio.get_running_loop().create_task(self._done.wait())
        try:
            while True:
                receiving = asyncio.ensure_future(ws.recv())
                finished, _ = await asyncio.wait(
                    {receiving, done}, return_when=asyncio.FIRST_COMPLETED
                )
                if receiving not in finished:
                    receiving.cancel()
                    await ws.close()
                    return resume
                try:
                    frame = json.loads(receiving.result())
                except ConnectionClosed:
                    return resume
                if frame["type"] == "message":
                    message = (frame["offset"], frame["text"])
                    talker.seen.append(message)
                    resume = {"epoch": epoch, "offset": frame["offset"]}
                    if frame["from"] == talker.user:
                        talker.acked.append(message)
                elif frame["type"] in ("system", "error"):
                    talker.notices.append(frame["text"])
        finally:
            speaker.cancel()
            done.cancel()

    async def _speak(self, talker: Talker, ws: ClientConnection) -> None:
        assert self._talking is not None  # start() made it before this task
        await asyncio.sleep(self._random.uniform(0, self.interval))
        while True:
            await self._talking.wait()
            with contextlib.suppress(ConnectionClosed):
                await ws.send(json.dumps({"type": "say", "text": f"{talker.user}-{talker.sent}"}))
                talker.sent += 1
            await asyncio.sleep(self.interval)


# -- the nodes ---------------------------------------------------------------------------


def readyz(port: int, host: str = "127.0.0.1") -> int | None:
    """The status of a node's ``GET /readyz`` (None when it does not answer in 1 s)."""
    connection = http.client.HTTPConnection(host, port, timeout=1.0)
    try:
        connection.request("GET", "/readyz")
        return connection.getresponse().status
    except OSError:
        return None
    finally:
        connection.close()


@dataclass
class Timeline:
    """When each step of a rolling restart happened (``time.monotonic()`` seconds)."""

    steps: list[tuple[float, str, int]] = field(default_factory=list)  # (when, what, node)

    def mark(self, what: str, node: int) -> None:
        self.steps.append((time.monotonic(), what, node))


def restart(
    node: ServeProcess,
    index: int,
    timeline: Timeline,
    *,
    drain_bound: float = 20.0,
    ready_within: float = 20.0,
    during: Callable[[], None] | None = None,
) -> int:
    """Drain ``node`` (SIGTERM), start it again on the same port, wait until ready.

    ``during()`` runs right after the signal, while the node drains. Marks
    ``sigterm``, ``exited``, ``started`` and ``ready`` on ``timeline``. Returns the
    drained process's exit status.

    Raises:
        TimeoutError: it did not exit within ``drain_bound`` s, or was not ready within
            ``ready_within`` s of starting.
    """
    process = node.process
    assert process is not None  # a node that was started
    timeline.mark("sigterm", index)
    process.terminate()
    if during is not None:
        during()
    try:
        status = process.wait(drain_bound)
    except Exception:
        process.kill()
        process.wait(WAIT)
        raise TimeoutError(f"node {index} did not exit within {drain_bound:g} s") from None
    timeline.mark("exited", index)
    node.start()
    timeline.mark("started", index)
    port = node.port
    assert port is not None  # start() learned it
    until(lambda: readyz(port) == 200, ready_within, f"node {index} ready")
    timeline.mark("ready", index)
    return status
