"""WebSocket: one upgraded connection, one text frame per event, pushed as it becomes due.

The server is python-websockets' threaded (sync) server, so it needs no event loop and
runs beside a notebook kernel's own loop; the client is websocket-client over a
:class:`~.accounting.CountingSocket`. Compression and keepalive pings are off so that
every byte on the wire is an event frame, the handshake or the close handshake.
"""

from __future__ import annotations

from collections.abc import Callable

import websocket  # websocket-client
from websockets.exceptions import ConnectionClosed
from websockets.sync.server import Server, ServerConnection, serve

from wslab.background import BackgroundServer

from .accounting import ByteCounter, open_counting_socket
from .events import CLIENT_TIMEOUT, Event, TickSchedule
from .http_server import HOLD, HOST
from .receipt import Receipt, receive_stream


class WebSocketServer(BackgroundServer):
    """Push every event of ``source`` to each client that connects (context manager)."""

    def __init__(self, source: TickSchedule) -> None:
        super().__init__(HOST, 0)
        self.source = source
        self._server: Server | None = None

    def _handle(self, connection: ServerConnection) -> None:
        try:
            for seq in range(self.source.count):
                if not self.source.wait_for(seq, self.stopping, HOLD):
                    return
                connection.send(self.source.event(seq).encode())
        except ConnectionClosed:
            return  # the client left; returning ends this handler
        # returning closes the connection with code 1000 (normal closure)

    def _serve(self, ready: Callable[[int], None]) -> None:
        self._server = serve(
            self._handle,
            self.host,
            self.requested_port,
            compression=None,
            ping_interval=None,
            server_header="wslab",
            close_timeout=0.5,
        )
        ready(self._server.socket.getsockname()[1])
        self._server.serve_forever()

    def _shutdown(self) -> None:
        """Closes the listener and open connections (1001), waits for handlers."""
        if self._server is not None:
            self._server.shutdown()


def receive_by_websocket(
    port: int,
    source: TickSchedule,
    counter: ByteCounter,
    *,
    timeout: float = CLIENT_TIMEOUT,
) -> Receipt:
    """Connect to ``ws://127.0.0.1:port/``, start the stream, read every event, close cleanly.

    Raises:
        websocket.WebSocketException: if the handshake fails or the connection drops.
        TimeoutError: if the events do not all arrive within the stream duration + ``timeout``.
    """
    sock = open_counting_socket(HOST, port, counter, timeout)
    try:
        ws = websocket.create_connection(f"ws://{HOST}:{port}/", socket=sock, timeout=timeout)
        receipt = receive_stream(
            "WebSocket",
            source,
            counter,
            lambda _: [Event.decode(ws.recv())],
            timeout=timeout,
            requests=1,  # the Upgrade
        )
        ws.close(timeout=timeout)  # close handshake: our close frame, then the server's
        return receipt
    finally:
        sock.close()
