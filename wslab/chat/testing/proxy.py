"""A TCP proxy on loopback that a test controls: the network between some clients and a
server, cut and healed at will, for machines where the kernel's packet filter (nftables,
iptables) is not there to do it.

Each accepted connection is forwarded to the target by two threads (one per direction).
:meth:`TcpProxy.cut` ends the connections whose client sent ``marker`` in its first
bytes (all of them with no marker) and ends every new one that does, until
:meth:`TcpProxy.heal`. The chat's Redis connections name themselves
(``CLIENT SETNAME wslab-chat-<pid>``, :mod:`wslab.chat.stores.redis.client`), so one
node's connections can be cut while Sentinels, replicas and other nodes pass.

A connection ended by a cut sees its socket closed (as after a reset): that is a
partition noticed at once, not a silent one where packets are dropped and only a
timeout tells.
"""

from __future__ import annotations

import contextlib
import socket
import threading

__all__ = ["TcpProxy"]

SNIFF = 512  # bytes of a connection's start in which the marker is looked for


class _Link:
    """One client connection and its connection to the target."""

    def __init__(self, client: socket.socket, server: socket.socket) -> None:
        self.client, self.server = client, server
        self.start = b""  # the client's first bytes, up to SNIFF

    def close(self) -> None:
        for sock in (self.client, self.server):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                sock.close()


class TcpProxy:
    """Listens on ``host`` (a free port, :attr:`port`) and forwards to ``target``."""

    def __init__(self, target: tuple[str, int], host: str = "127.0.0.1") -> None:
        self.target = target
        self._listener = socket.create_server((host, 0))
        self.host, self.port = self._listener.getsockname()[:2]
        self._links: set[_Link] = set()
        self._lock = threading.Lock()
        self._cut: bytes | None = None
        self._cutting = False
        self._closed = False
        threading.Thread(target=self._accept, name="wslab-proxy", daemon=True).start()

    def cut(self, marker: bytes | None = None) -> int:
        """End the connections that sent ``marker`` (all, if None) and every new one
        that does; returns how many were ended."""
        with self._lock:
            self._cut, self._cutting = marker, True
            ended = [link for link in self._links if self._matches(link)]
        for link in ended:
            link.close()
        return len(ended)

    def heal(self) -> None:
        """Let every connection through again."""
        with self._lock:
            self._cutting = False

    def close(self) -> None:
        self._closed = True
        with contextlib.suppress(OSError):
            self._listener.close()
        with self._lock:
            links, self._links = list(self._links), set()
        for link in links:
            link.close()

    def _matches(self, link: _Link) -> bool:
        return self._cutting and (self._cut is None or self._cut in link.start)

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(self.target, timeout=2)
                server.settimeout(None)
            except OSError:
                client.close()
                continue
            link = _Link(client, server)
            with self._lock:
                self._links.add(link)
            for source, sink, up in ((client, server, True), (server, client, False)):
                threading.Thread(
                    target=self._pump, args=(link, source, sink, up), daemon=True
                ).start()

    def _pump(self, link: _Link, source: socket.socket, sink: socket.socket, up: bool) -> None:
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    break
                if up and len(link.start) < SNIFF:
                    link.start += data[: SNIFF - len(link.start)]
                with self._lock:
                    cut = self._matches(link)
                if cut:
                    break
                sink.sendall(data)
        except OSError:
            pass
        finally:
            link.close()
            with self._lock:
                self._links.discard(link)
