"""A local stand-in for the test's WebSocket server (websocket-fh6l.onrender.com).

Right after the opening handshake the replica sends one text message,
``RECORDED_MESSAGE``, then keeps the connection open until the client closes it.
That message is what the real server sends as reported consistently by several
independent public solutions of the same test (:mod:`.provenance`), never something
observed by this project.

What the replica does with what a client sends: it ignores text and binary messages
(the real server's reaction to them is unknown, so the replica invents none); ping is
answered with pong and the close handshake is completed by the websockets library.

It runs the websockets library's threaded server in a :class:`wslab.background.BackgroundServer`,
so it starts and stops the same way from a script, a test or a notebook kernel.
Run ``python -m wslab.replica [--host H] [--port N] [--tls]`` to try it by hand.
"""

from __future__ import annotations

import argparse
import ssl
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path

import trustme
from websockets.exceptions import ConnectionClosed
from websockets.sync.server import Server, ServerConnection, serve

from wslab.background import BackgroundServer

from .provenance import RECORDED_MESSAGE


class Replica(BackgroundServer):
    """A WebSocket server on loopback that greets each client with one message.

    Use it as a context manager; ``url`` is known once it has started. With
    ``tls=True`` it serves wss:// with a throwaway certificate authority, whose
    certificate is written to ``ca_file`` for clients to trust.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        tls: bool = False,
        message: str = RECORDED_MESSAGE,
    ) -> None:
        super().__init__(host, port)
        self.message = message
        self.tls = tls
        self._server: Server | None = None
        self._ca: trustme.CA | None = None
        self._tmpdir: tempfile.TemporaryDirectory[str] | None = None
        self.ca_file: str | None = None

    @property
    def url(self) -> str:
        return self.url_for("wss" if self.tls else "ws")

    def client_ssl_context(self) -> ssl.SSLContext:
        """An SSL context that trusts this replica's throwaway certificate."""
        if self._ca is None:
            raise RuntimeError("the replica was not started with tls=True")
        context = ssl.create_default_context()
        self._ca.configure_trust(context)
        return context

    def stop(self, timeout: float = 10.0) -> None:
        """Close every connection (1001) and the listening socket; idempotent."""
        try:
            super().stop(timeout)
        finally:
            self._remove_certificate()

    def _serve(self, ready: Callable[[int], None]) -> None:
        try:
            self._server = serve(
                self._greet,
                self.host,
                self.requested_port,
                ssl=self._server_ssl_context() if self.tls else None,
                open_timeout=5,
                close_timeout=2,
            )
        except BaseException:
            self._remove_certificate()  # a failed start leaves no certificate directory
            raise
        ready(self._server.socket.getsockname()[1])
        self._server.serve_forever()

    def _shutdown(self) -> None:
        if self._server is not None:
            self._server.shutdown()

    def _remove_certificate(self) -> None:
        if self._tmpdir is not None:
            self._tmpdir.cleanup()
            self._tmpdir = None

    def _greet(self, connection: ServerConnection) -> None:
        try:
            connection.send(self.message)
            for _ in connection:  # ignore what the client sends, until it closes
                pass
        except ConnectionClosed:
            pass  # a client that vanishes or breaks the protocol concerns only itself

    def _server_ssl_context(self) -> ssl.SSLContext:
        self._ca = trustme.CA()
        certificate = self._ca.issue_cert(self.host, "localhost")
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        certificate.configure_cert(context)
        self._tmpdir = tempfile.TemporaryDirectory(prefix="wslab-replica-")
        ca_path = Path(self._tmpdir.name) / "ca.pem"
        self._ca.cert_pem.write_to_path(str(ca_path))
        self.ca_file = str(ca_path)
        return context


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m wslab.replica",
        description="Réplica local do servidor do teste: envia uma mensagem após o handshake.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--host", default="127.0.0.1", help="endereço onde escutar")
    parser.add_argument("--port", type=int, default=0, help="0 escolhe uma porta livre")
    parser.add_argument(
        "--tls", action="store_true", help="serve wss:// com certificado descartável"
    )
    args = parser.parse_args(argv)
    try:
        replica = Replica(args.host, args.port, tls=args.tls).start()
    except OSError as error:
        print(f"Não foi possível escutar em {args.host}:{args.port}: {error.strerror or error}.")
        return 1
    try:  # Ctrl-C may come at any moment once the replica listens
        print(f"Réplica escutando em {replica.url} (Ctrl-C encerra)")
        if replica.ca_file:
            print(f"Certificado da autoridade (para o cliente confiar): {replica.ca_file}")
        threading.Event().wait()
    except KeyboardInterrupt:
        print("Encerrando a réplica.")
    finally:
        replica.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
