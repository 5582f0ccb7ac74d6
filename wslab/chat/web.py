"""The HTTP side of the chat server: the browser client's files, and who may open ``/ws``.

Pure functions of the request, so each rule has a unit test without sockets.

Who may open ``/ws``:

- the ``Host`` header must name this server: ``localhost``, the address the client
  connected to, or a name the operator allowed (``allowed_hosts``, for a server
  reached by a DNS name). This stops DNS rebinding, where a hostile page makes its own
  name resolve to this machine: the browser then sends that hostile name as ``Host``;
- the ``Origin`` header, when present, must be this same host, over http or https.
  This stops cross-site WebSocket hijacking, where a page of another site opens the
  socket with the user's cookies. Clients that send no ``Origin`` (scripts, not
  browsers) are allowed.
"""
from __future__ import annotations

from collections.abc import Collection
from importlib import resources

from websockets.datastructures import Headers
from websockets.http11 import Response

__all__ = ["StaticFiles", "handshake_refusal", "host_name"]

_CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
}
_SECURITY_HEADERS = [
    ("Content-Security-Policy", "default-src 'self'; connect-src 'self'"),
    ("X-Content-Type-Options", "nosniff"),
    ("Cache-Control", "no-store"),
]


class StaticFiles:
    """The files of ``wslab/chat/static``, read once; ``/`` is ``index.html``."""

    def __init__(self) -> None:
        self._files: dict[str, tuple[list[tuple[str, str]], bytes]] = {}
        for entry in resources.files("wslab.chat").joinpath("static").iterdir():
            content_type = _CONTENT_TYPES.get("." + entry.name.rpartition(".")[2])
            if content_type is None:
                continue
            body = entry.read_bytes()
            headers = [("Content-Type", content_type), ("Content-Length", str(len(body)))]
            self._files["/" + entry.name] = (headers + _SECURITY_HEADERS, body)
        if "/index.html" in self._files:
            self._files["/"] = self._files["/index.html"]

    def response(self, path: str) -> Response | None:
        """A new 200 response for ``path``, or None if there is no such file.

        New on every call: websockets adds its ``Server`` header to the response it
        sends, so a shared one would gain a header per request.
        """
        found = self._files.get(path)
        if found is None:
            return None
        headers, body = found
        return Response(200, "OK", Headers(headers), body)


def host_name(host_header: str) -> str:
    """The name in a ``Host`` header, without port or IPv6 brackets, lowercased."""
    host = host_header.strip().lower()
    if host.startswith("["):
        return host[1:].partition("]")[0]
    return host.rpartition(":")[0] if ":" in host else host


def handshake_refusal(
    headers: Headers,
    local_address: str,
    allowed_hosts: Collection[str] = (),
) -> str | None:
    """Why a request to ``/ws`` must get 403, in one pt-BR sentence; None to accept it.

    ``local_address`` is the IP address the client connected to (the server side of
    the socket); ``allowed_hosts`` are extra names this server answers to. A repeated
    ``Host`` or ``Origin`` header is refused too: it could be read two ways.
    """
    hosts, origins = headers.get_all("Host"), headers.get_all("Origin")
    if len(hosts) != 1 or len(origins) > 1:
        return "Cabeçalho Host ausente ou repetido, ou Origin repetido."
    host = hosts[0]
    known = {"localhost", local_address.lower(), *(h.lower() for h in allowed_hosts)}
    if host_name(host) not in known:
        return (
            f"Host não reconhecido: {host[:80]!r} não é um nome deste servidor "
            "(use o endereço dele, ou inicie-o com --allow-host)."
        )
    if origins and origins[0].lower() not in (
        f"http://{host}".lower(),
        f"https://{host}".lower(),
    ):
        return f"Origem não permitida: {origins[0][:80]!r} não é a origem deste servidor."
    return None
