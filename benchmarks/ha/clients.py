"""Chat clients that record every operation, for the checker (:mod:`.checker`).

A :class:`Recorder` is one user: it connects to one of the nodes, sends numbered lines
(public ones, and private ones to another user) at a steady pace, reads everything, and
on a lost connection resumes on a node chosen at random from the last offset it saw.
Every event goes to :attr:`Recorder.history` with the time it happened
(``time.monotonic``):

    ("send", time, text)                       a line written to the socket
    ("resend", time, text)                     the same line again, with its id
    ("welcome", time, epoch, recovered, resume)  resume: (epoch, offset) asked, or None
    ("message", time, offset, sender, to, text, replayed)
    ("error", time, text, line)                an error frame: ``line`` the text of the
                                               line it refused (its id), or None
    ("system", time, text)                     a notice
    ("closed", time, code)                     the connection ended (None: never opened)

A line is *acknowledged* when its own message comes back to its sender (an echo, or a
replay of it after a resume). Texts are unique (``<user>-<n>``), so a text names a line,
and it is the line's id on the wire too. As the browser client does, a recorder keeps
each line until its answer comes back: a line refused is sent again (with the same id)
``RETRY_AFTER`` seconds later, a line unanswered when the connection ended is sent again once the
next session is welcomed; at most ``ATTEMPTS`` times in all. The server stores a line
sent again at most once: the checker counts copies.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import time

from websockets.asyncio.client import connect
from websockets.exceptions import WebSocketException

__all__ = ["Recorder", "run_clients"]

OPEN_TIMEOUT = 3.0  # seconds for a connection and its welcome
ATTEMPTS = 4  # sends of one line, at most (the first and three again)
RETRY_AFTER = 1.0  # seconds before a refused line is sent again


class Recorder:
    """One user's client (see the module docstring).

    Args:
        user: the name (the secret is fixed).
        urls: the nodes' WebSocket URLs (read at each reconnection: the caller may
            change the list in place).
        peers: other users, for private lines.
        rng: the run's random source (seeded).
        interval: seconds between two lines.
        private: the share of lines sent as ``/msg`` to a peer.
        reconnect: a session ends after about this many seconds (at random, 0.5 to 1.5
            times), so that resumes happen all the time; None: only on a loss.
        address: the loopback address it connects from (127.0.0.x: users have their
            own addresses, and the node's limits per address, such as its resumes per
            second, apply to each alone).
    """

    def __init__(
        self,
        user: str,
        urls: list[str],
        peers: list[str],
        rng: random.Random,
        *,
        interval: float = 0.05,
        private: float = 0.3,
        reconnect: float | None = None,
        address: str | None = None,
    ) -> None:
        self.user = user
        self.urls = urls
        self.peers = [p for p in peers if p != user]
        self.rng = rng
        self.interval = interval
        self.private = private
        self.reconnect = reconnect
        self.address = address
        self.history: list[tuple] = []
        self.sent = 0
        self._epoch: str | None = None
        self._seen: int | None = None  # the newest offset delivered since the last welcome
        self._known: set[str] = set()
        # Lines sent and not answered yet: id (the text) -> (the line, sends so far).
        self._outbox: dict[str, tuple[str, int]] = {}
        self._refused: list[tuple[float, str]] = []  # (when, id) to send again

    def _note(self, *event) -> None:
        self.history.append((event[0], time.monotonic(), *event[1:]))

    async def run(self, stop: asyncio.Event) -> None:
        """Connect, send and read until ``stop`` is set; reconnect after any loss."""
        url = self.rng.choice(self.urls)
        while not stop.is_set():
            try:
                await self._session(url, stop)
            except (OSError, TimeoutError, WebSocketException, json.JSONDecodeError):
                self._note("closed", None)
            if stop.is_set():
                return
            url = self.rng.choice(self.urls)
            await asyncio.sleep(self.rng.uniform(0.05, 0.3))

    async def _session(self, url: str, stop: asyncio.Event) -> None:
        local = {"local_addr": (self.address, 0)} if self.address else {}
        async with connect(url, open_timeout=OPEN_TIMEOUT, close_timeout=1, **local) as ws:
            resume = None
            if self._epoch is not None and self._seen is not None:
                resume = {"epoch": self._epoch, "offset": self._seen}
            hello = {"type": "hello", "user": self.user, "secret": "segredo", "resume": resume}
            await ws.send(json.dumps(hello))
            welcome = json.loads(await asyncio.wait_for(ws.recv(), OPEN_TIMEOUT))
            if welcome.get("type") != "welcome":
                self._note("error", str(welcome.get("text")))
                return
            asked = (resume["epoch"], resume["offset"]) if resume else None
            self._note("welcome", welcome["epoch"], welcome["recovered"], asked)
            if not welcome["recovered"]:
                self._seen = None  # a gap the client was told about: a new chain
            self._epoch = welcome["epoch"]
            writer = asyncio.create_task(self._send(ws, stop))
            try:
                await self._read(ws, stop)
            finally:
                writer.cancel()
                with contextlib.suppress(asyncio.CancelledError, WebSocketException, OSError):
                    await writer
            self._note("closed", ws.close_code)

    async def _send(self, ws, stop: asyncio.Event) -> None:
        self._refused = [(0.0, text) for text in self._outbox]  # unanswered at the last end
        while not stop.is_set():
            now = time.monotonic()
            again = [text for when, text in self._refused if when <= now]
            self._refused = [(when, text) for when, text in self._refused if when > now]
            for text in again:
                await self._send_again(ws, text)
            self.sent += 1
            text = f"{self.user}-{self.sent}"
            line = text
            known = sorted(self._known)  # peers seen to exist (a /msg to a name never
            if known and self.rng.random() < self.private:  # registered is an error)
                line = f"/msg {self.rng.choice(known)} {text}"
            self._outbox[text] = (line, 1)
            self._note("send", text)
            await ws.send(json.dumps({"type": "say", "text": line, "id": text}))
            await asyncio.sleep(self.interval * self.rng.uniform(0.5, 1.5))

    async def _send_again(self, ws, text: str) -> None:
        line, sends = self._outbox.get(text, ("", ATTEMPTS))
        if sends >= ATTEMPTS:
            self._outbox.pop(text, None)  # given up: the checker counts it unanswered
            return
        self._outbox[text] = (line, sends + 1)
        self._note("resend", text)
        await ws.send(json.dumps({"type": "say", "text": line, "id": text}))

    async def _read(self, ws, stop: asyncio.Event) -> None:
        ends = float("inf")
        if self.reconnect is not None:
            ends = time.monotonic() + self.reconnect * self.rng.uniform(0.5, 1.5)
        while not stop.is_set() and time.monotonic() < ends:
            try:
                frame = await asyncio.wait_for(ws.recv(), 0.5)
            except TimeoutError:
                continue
            data = json.loads(frame)
            kind = data.get("type")
            if kind == "message":
                self._seen = data["offset"]
                if data["from"] in self.peers:
                    self._known.add(data["from"])
                if data["from"] == self.user:
                    self._outbox.pop(data.get("id"), None)
                self._note(
                    "message",
                    data["offset"],
                    data["from"],
                    data["to"],
                    data["text"],
                    data["replayed"],
                )
            elif kind == "error":
                self._note(kind, data["text"], data.get("id"))
                if data.get("id") in self._outbox:  # again after a while, as a person would
                    self._refused.append((time.monotonic() + RETRY_AFTER, data["id"]))
            elif kind == "system":
                self._outbox.pop(data.get("id"), None)
                self._note(kind, data["text"])


async def run_clients(recorders: list[Recorder], during, settle: float = 2.0) -> None:
    """Run every recorder while ``during()`` (a coroutine function: the faults, at
    most 5 minutes) runs and ``settle`` seconds more, then stop them and wait (bounded)
    for them to end."""
    stop = asyncio.Event()
    tasks = [asyncio.create_task(r.run(stop)) for r in recorders]
    try:
        await asyncio.wait_for(during(), 300)
        await asyncio.sleep(settle)
    finally:
        stop.set()
        await asyncio.wait(tasks, timeout=10)
        for task in tasks:
            task.cancel()
