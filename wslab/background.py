"""One way to run a server in a background thread: start, stop, context manager, port, URL.

Every local server of the project (the challenge's replica and misbehaving servers,
the transports' HTTP and WebSocket servers, the chat server) runs in a thread of the
process that uses it, so a script, a test and a notebook kernel (which already runs
an event loop) start and stop it the same way::

    with Replica() as server:       # start(): returns once the port is bound
        connect(server.url_for("ws"))
    # stop(): the server is closed and its thread joined, even if the body raised

A subclass implements ``_serve(ready)``, run in the server's thread: bind, call
``ready(port)`` with the port actually bound, then serve until asked to stop. It is
asked through the ``stopping`` event (set first) and the ``_shutdown()`` hook (called
from the thread that calls ``stop``), which makes a blocking ``serve_forever`` or an
event loop return. For an asyncio server, ``_serve`` creates its own loop::

    def _serve(self, ready):
        loop = self._loop = asyncio.new_event_loop()
        server = loop.run_until_complete(serve(handler, self.host, self.requested_port))
        ready(server.sockets[0].getsockname()[1])
        loop.run_until_complete(server.wait_closed())
        loop.close()

    def _shutdown(self):
        self._loop.call_soon_threadsafe(self._server.close)

An exception raised by ``_serve`` before ``ready`` is raised again by ``start``.
Messages of the exceptions raised here are for programmers, in English.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Self

from wslab.protocol.handshake import url_host

__all__ = ["BackgroundServer"]


class BackgroundServer:
    """A server on ``host``:``port`` (0: an ephemeral port) served in a daemon thread.

    Not running until ``start``; ``stop`` is idempotent and a stopped server may be
    started again.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self.requested_port = port
        self.stopping = threading.Event()
        self._port: int | None = None
        self._thread: threading.Thread | None = None

    # -- what a subclass implements ----------------------------------------------------

    def _serve(self, ready: Callable[[int], None]) -> None:
        """Bind, call ``ready(port)``, serve until ``stopping`` is set or ``_shutdown`` runs."""
        raise NotImplementedError

    def _shutdown(self) -> None:
        """Make ``_serve`` return (called by ``stop`` after setting ``stopping``)."""

    # -- the lifecycle -----------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._thread is not None and self._port is not None

    @property
    def port(self) -> int:
        """The port bound by the last start (kept after stop, so a report can name it).

        Raises ``RuntimeError`` if the server was never started.
        """
        if self._port is None:
            raise RuntimeError(f"{type(self).__name__} is not running; call start() or use `with`")
        return self._port

    def url_for(self, scheme: str, path: str = "/") -> str:
        """``scheme://host:port/path`` for this server (IPv6 hosts in brackets)."""
        return f"{scheme}://{url_host(self.host)}:{self.port}/{path.lstrip('/')}"

    def start(self, timeout: float = 10.0) -> Self:
        """Start the thread and return once the port is bound.

        Raises:
            RuntimeError: if already running.
            TimeoutError: if the server did not bind within ``timeout`` seconds.
            Whatever ``_serve`` raised before binding (``OSError`` for a port in use).
        """
        if self._thread is not None:
            raise RuntimeError(f"{type(self).__name__} is already running")
        bound = threading.Event()
        outcome: list[int | BaseException] = []

        def ready(port: int) -> None:
            outcome.append(port)
            bound.set()

        def run() -> None:
            try:
                self._serve(ready)
            except BaseException as error:  # raised again by start() when not yet bound
                if not bound.is_set():
                    outcome.append(error)
                    bound.set()
                    return
                raise
            if not bound.is_set():
                outcome.append(
                    RuntimeError(f"{type(self).__name__}._serve returned before ready()")
                )
                bound.set()

        self.stopping.clear()
        self._port = None
        self._thread = threading.Thread(
            target=run, name=f"wslab-{type(self).__name__}", daemon=True
        )
        self._thread.start()
        if not bound.wait(timeout):
            self.stop(timeout)
            raise TimeoutError(f"{type(self).__name__} did not start in {timeout:g} s")
        if isinstance(outcome[0], BaseException):
            self._thread.join(timeout)
            self._thread = None
            raise outcome[0]
        self._port = outcome[0]
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Ask the server to stop, then join its thread. Idempotent.

        Raises:
            TimeoutError: if the thread did not end within ``timeout`` seconds.
        """
        thread = self._thread
        if thread is None:
            return
        self.stopping.set()
        if self._port is not None:
            self._shutdown()
        thread.join(timeout)
        self._thread = None
        if thread.is_alive():
            raise TimeoutError(f"{type(self).__name__} did not stop in {timeout:g} s")

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
