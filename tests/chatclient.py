"""Helpers shared by the chat's tests: one wait bound, clients whose every receive is
bounded (so a missing frame fails the test instead of hanging it), polling, and the
stores' recorder.

``WAIT`` is the one bound on every wait of the chat's tests (seconds); the longer ones
are multiples of it. On a slow or loaded machine, ``WSLAB_TESTS_TIMEOUT_FACTOR=3`` makes
every bound three times longer, as ``WEBSOCKETS_TESTS_TIMEOUT_FACTOR`` does for
websockets' own tests. Raising it never changes what a test asserts, only how long a
failing one takes to say so.
"""

import asyncio
import contextlib
import json
import os
import time

import pytest
from websockets.exceptions import ConnectionClosed

from benchmarks.chat_attacks import masked, raw_socket, read_head
from wslab.chat.testing import ServeProcess
from wslab.protocol.handshake import build_request, generate_key

WAIT = 5.0 * float(os.environ.get("WSLAB_TESTS_TIMEOUT_FACTOR", "1"))


def until(check, within=WAIT, step=0.05):
    """Poll ``check()`` until it returns a true value, at most ``within`` seconds;
    return that value (AssertionError naming the check when it never comes)."""
    deadline = time.monotonic() + within
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {within:g} s: {check}")
        time.sleep(step)


def run(coroutine, within=4 * WAIT):
    """Run one test body on a fresh event loop, bounded."""
    return asyncio.run(asyncio.wait_for(coroutine, within))


# -- WebSocket clients -------------------------------------------------------------------


def hello(ws, user, secret="segredo", resume=None):
    ws.send(json.dumps({"type": "hello", "user": user, "secret": secret, "resume": resume}))
    welcome = json.loads(ws.recv(timeout=WAIT))
    assert welcome["type"] == "welcome", welcome
    return welcome


def say(ws, text, said_id=None):
    """Send a line (with its id, when given)."""
    frame = {"type": "say", "text": text}
    if said_id is not None:
        frame["id"] = said_id
    ws.send(json.dumps(frame))


def receive(ws):
    return json.loads(ws.recv(timeout=WAIT))


def closed_with(ws):
    """The close code and reason the server sent (waits for the close, bounded)."""
    with pytest.raises(ConnectionClosed) as caught:
        ws.recv(timeout=WAIT)
    return caught.value.rcvd.code, caught.value.rcvd.reason


def nothing_more(ws, within=0.2):
    with pytest.raises(TimeoutError):
        ws.recv(timeout=within)
    return True


def silent_session(server, user, rcvbuf=None):
    """A raw socket that completes the handshake and the hello with ``server`` (a
    ChatServer), then never reads; returned once the session is open."""
    raw = raw_socket(server.port, rcvbuf=rcvbuf, timeout=WAIT)
    raw.sendall(build_request(server.ws_url, generate_key()))
    assert read_head(raw).startswith(b"HTTP/1.1 101")
    before = len(server.session_ids())
    hello = json.dumps({"type": "hello", "user": user, "secret": "s"}).encode()
    raw.sendall(masked(1, hello))
    until(lambda: len(server.session_ids()) > before)
    return raw


# -- servers -----------------------------------------------------------------------------


def chat_server(*, max_rate=20.0, burst=40, **options):
    """A ChatServer for tests: secrets hashed cheaply (explicitly), limits as given."""
    from wslab.chat.node import Limits
    from wslab.chat.rules.kdf import CHEAP
    from wslab.chat.testing import ChatServer

    options.setdefault("kdf", CHEAP)
    options.setdefault("limits", Limits(max_rate=max_rate, burst=burst))
    return ChatServer(**options)


def serve_node(*options, cwd=None) -> ServeProcess:
    """``python -m wslab.chat serve --port 0 --max-rate 0 --kdf-n 1024 OPTIONS`` as a
    real process that dies with the test run (a later option wins), started: it
    listens."""
    return ServeProcess(
        "--max-rate", "0", "--kdf-n", "1024", *options, cwd=cwd, wait=4 * WAIT
    ).start()


def serve_process(*options, cwd=None):
    """:func:`serve_node`'s (process, ws url)."""
    server = serve_node(*options, cwd=cwd)
    return server.process, server.ws_url


# -- stores ------------------------------------------------------------------------------


class Recorder:
    """A log's callbacks (``deliver``, ``lost``, ``outage``): everything received, in
    order, and bounded waits for what should come."""

    def __init__(self) -> None:
        self.seen = []
        self.lost = []
        self.outages = []  # True: the store stopped answering; False: it answers again
        self._changed = asyncio.Event()

    def __call__(self, messages) -> None:
        self.seen.extend(messages)
        self._changed.set()

    def on_lost(self, epoch: str) -> None:
        self.lost.append(epoch)
        self._changed.set()

    def on_outage(self, down: bool) -> None:
        self.outages.append(down)
        self._changed.set()

    async def until(self, condition, what: str = "a delivery") -> None:
        deadline = time.monotonic() + 2 * WAIT
        while not condition(self):
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no {what} in {2 * WAIT:g} s; seen {self.offsets()}")
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), left)

    async def upto(self, offset: int) -> None:
        await self.until(lambda r: r.seen and r.seen[-1].offset >= offset, f"offset {offset}")

    def offsets(self) -> list[int]:
        return [m.offset for m in self.seen]


async def append_lines(log, recorder, *lines):
    """Append lines ("ana: text" public, "ana>joao: text" private); wait until each is
    delivered (a read reflects what was delivered) and return the offsets."""
    from wslab.chat.rules.messages import Kind

    offsets = []
    for line in lines:
        head, text = line.split(": ", 1)
        sender, _, to = head.partition(">")
        kind = Kind.PRIVATE if to else Kind.PUBLIC
        offsets.append(await log.append(kind, sender, to or None, text))
    if offsets:
        await recorder.upto(offsets[-1])
    return offsets


@contextlib.asynccontextmanager
async def started(open_stores, retention=10):
    """A log and credentials from ``await open_stores(retention)``, the log started with
    a :class:`Recorder`: ``(log, credentials, recorder)``; both closed at the end."""
    log, users = await open_stores(retention)
    recorder = Recorder()
    try:
        await log.start(recorder, recorder.on_lost, recorder.on_outage)
        yield log, users, recorder
    finally:
        await log.close()
        await users.close()


def redis_node(url, retention=10):
    """What one node holds of a Redis (:func:`started`): its log and credentials."""
    from wslab.chat.stores.redis import RedisCredentials, RedisLog

    async def open_stores(retention):
        return RedisLog(url, retention), RedisCredentials(url)

    return started(open_stores, retention)
