"""A :class:`~wslab.chat.net.service.ChatService` in a background thread, for tests and
notebooks, and the stores it uses when none are given."""

from __future__ import annotations

import asyncio

from ...background import BackgroundServer
from ..assemble import choose_stores
from ..net.connection import CLOSE_TIMEOUT
from ..net.service import OPEN_TIMEOUT, WS_PATH, ChatService
from ..node import ChatNode, Limits
from ..rules.kdf import SCRYPT, Scrypt

__all__ = ["ChatServer"]


class ChatServer(BackgroundServer):
    """A :class:`ChatService` running in a background thread, for tests and notebooks
    (a :class:`wslab.background.BackgroundServer`).

    Use it as a context manager; ``url`` (the browser client) and ``ws_url`` are known
    once it has started. Leaving the ``with`` closes every connection with 1001.

    Args:
        host, port: where to listen; port 0 picks a free one.
        retention: history size of the stores created when ``node`` is omitted (in
            memory unless ``db`` names a SQLite file).
        db: a SQLite database path (``wslab.chat.stores.sqlite``); None keeps
            everything in memory.
        kdf: cost of stored secrets (tests lower it explicitly).
        limits: the node's limits (:class:`wslab.chat.node.Limits`).
        node: an existing node to serve instead.
        ping_interval, ping_timeout, close_timeout, open_timeout: websockets'
            keepalive, closing and opening handshake bounds, in seconds.
        service_options: ``hello_timeout``, ``max_pending``, ``allowed_hosts``,
            ``caps``: see :class:`ChatService`.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        retention: int = 1000,
        db: str | None = None,
        kdf: Scrypt = SCRYPT,
        limits: Limits | None = None,
        node: ChatNode | None = None,
        ping_interval: float | None = 20.0,
        ping_timeout: float | None = 20.0,
        close_timeout: float | None = CLOSE_TIMEOUT,
        open_timeout: float | None = OPEN_TIMEOUT,
        **service_options,
    ) -> None:
        super().__init__(host, port)
        if node is None:
            stores = choose_stores(db=db, retention=retention)
            node = ChatNode(stores.log, stores.credentials, kdf=kdf, limits=limits or Limits())
        self.service = ChatService(node, **service_options)
        self._options = {
            "ping_interval": ping_interval,
            "ping_timeout": ping_timeout,
            "close_timeout": close_timeout,
            "open_timeout": open_timeout,
        }
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None

    @property
    def node(self) -> ChatNode:
        return self.service.node

    @property
    def epoch(self) -> str:
        return self.service.epoch

    @property
    def url(self) -> str:
        return self.url_for("http")

    @property
    def ws_url(self) -> str:
        return self.url_for("ws", WS_PATH)

    def _serve(self, ready) -> None:
        loop = self._loop = asyncio.new_event_loop()
        try:
            loop.run_until_complete(self._run(ready))
        finally:
            loop.close()

    async def _run(self, ready) -> None:
        server = await self.service.serve(self.host, self.requested_port, **self._options)
        self._stop = asyncio.Event()
        ready(server.sockets[0].getsockname()[1])
        await self._stop.wait()
        await self.service.shut_down(server)  # 1001 to every connection, bounded

    def _shutdown(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)

    def stop(self, timeout: float | None = None) -> None:
        """Close every connection with 1001 and wait for the thread to end.

        By default waits ``close_timeout`` plus 5 s: a peer that does not answer the
        close is cut after ``close_timeout``.
        """
        if timeout is None:
            timeout = (self._options["close_timeout"] or CLOSE_TIMEOUT) + 5.0
        super().stop(timeout)

    def _call(self, coroutine, timeout: float):
        if self._loop is None or not self.running:
            raise RuntimeError("the chat server is not running")
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout)

    def session_ids(self, timeout: float = 5.0) -> list[str]:
        """Ids of the open sessions (read on the server's loop)."""

        async def read() -> list[str]:
            return self.service.session_ids()

        return self._call(read(), timeout)

    def drop(self, session_id: str, timeout: float = 5.0) -> None:
        """Cut a session's TCP connection without a close frame, as a network failure
        would; returns once the server has ended the session.

        Raises:
            KeyError: if the session is not open.
        """

        async def cut() -> None:
            connection = self.service.connection(session_id)
            connection.transport.abort()
            async with asyncio.timeout(timeout):
                await connection.wait_closed()
                while session_id in self.service.session_ids():
                    await asyncio.sleep(0.01)

        self._call(cut(), timeout)
