"""The HTTP side of the chat server: the browser client's files, and who may open ``/ws``.

Pure functions of the request, so each rule has a unit test without sockets.

Who may open ``/ws``:

- the ``Host`` header must name this server: ``localhost`` or the address the client
  connected to, with this server's port, or a name the operator allowed
  (``allowed_hosts``, for a server reached by a DNS name, any port: a proxy may sit in
  front). This stops DNS rebinding, where a hostile page makes its own name resolve to
  this machine: the browser then sends that hostile name as ``Host``. The page itself
  is refused the same way, with the reason in the page, so a user who reached the
  server by an unknown name reads why instead of a client that never connects;
- the ``Origin`` header, when present, must be this same host, over http or https.
  This stops cross-site WebSocket hijacking, where a page of another site opens the
  socket with the user's cookies. Clients that send no ``Origin`` (scripts, not
  browsers) are allowed. Several nodes of one chat (``serve --node``) admit each
  other's origins, and any the operator names (``allowed_origins``), since a page
  served by one node reconnects to another; every other origin is still refused.

The page's Content-Security-Policy lets it open WebSockets to its own server and to
the other nodes (``connect_sources``), nowhere else.
"""

from __future__ import annotations

from collections.abc import Collection
from html import escape
from importlib import resources
from urllib.parse import urlsplit

from websockets.datastructures import Headers
from websockets.http11 import Response

__all__ = [
    "StaticFiles",
    "handshake_refusal",
    "host_name",
    "host_port",
    "parse_origin",
    "refusal_page",
    "socket_url",
]

_CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}
_SECURITY_HEADERS = [
    ("X-Frame-Options", "DENY"),  # frame-ancestors for browsers that predate it
    ("X-Content-Type-Options", "nosniff"),
    ("Cache-Control", "no-store"),
]


def parse_origin(text: str) -> str:
    """The origin (``scheme://host[:port]``, lowercased) of an http(s) URL such as
    ``http://10.0.0.2:8765/``, as a browser writes it in ``Origin``.

    Raises:
        ValueError: (a pt-BR sentence, shown by the CLI) not an http(s) URL with a
            host and at most a ``/`` path, or a port that is not a number.
    """
    url = urlsplit(text.strip())
    try:
        port = url.port
    except ValueError:
        port = -1
    if (
        url.scheme.lower() not in ("http", "https")
        or not url.hostname
        or url.path not in ("", "/")
        or url.query
        or url.fragment
        or url.username is not None
        or port == -1
    ):
        raise ValueError(
            f"{text[:80]!r} não é uma origem: use http://HOST:PORTA (ou https://), sem caminho."
        )
    return f"{url.scheme.lower()}://{url.netloc.lower()}"


def socket_url(origin: str) -> str:
    """The chat's WebSocket URL at an origin: ``http://h:p`` -> ``ws://h:p/ws``."""
    scheme, _, rest = parse_origin(origin).partition("://")
    return f"{'wss' if scheme == 'https' else 'ws'}://{rest}/ws"


class StaticFiles:
    """The files of ``wslab/chat/net/static``, read once; ``/`` is ``index.html``.

    ``connect_sources``: the other nodes' WebSocket URLs, or the public ones
    (:func:`socket_url`), which the page's CSP lets it connect to besides its own
    server; ``extra_headers`` go on every file (HSTS, on a node serving TLS).
    """

    def __init__(
        self,
        connect_sources: Collection[str] = (),
        extra_headers: Collection[tuple[str, str]] = (),
    ) -> None:
        connect = " ".join(["'self'", *connect_sources])
        policy = f"default-src 'self'; connect-src {connect}; frame-ancestors 'none'"
        security = [("Content-Security-Policy", policy), *_SECURITY_HEADERS, *extra_headers]
        self._files: dict[str, tuple[list[tuple[str, str]], bytes]] = {}
        for entry in resources.files("wslab.chat.net").joinpath("static").iterdir():
            content_type = _CONTENT_TYPES.get("." + entry.name.rpartition(".")[2])
            if content_type is None:
                continue
            body = entry.read_bytes()
            headers = [("Content-Type", content_type), ("Content-Length", str(len(body)))]
            self._files["/" + entry.name] = (headers + security, body)
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


def host_port(host_header: str) -> int | None:
    """The port in a ``Host`` header, None when it names none (or not a number)."""
    host = host_header.strip()
    rest = host.rpartition("]")[2] if host.startswith("[") else host
    port = rest.rpartition(":")[2] if ":" in rest else ""
    return int(port) if port.isdigit() else None


def handshake_refusal(
    headers: Headers,
    local_address: str,
    allowed_hosts: Collection[str] = (),
    *,
    local_port: int | None = None,
    check_origin: bool = True,
    allowed_origins: Collection[str] = (),
    public_origins: Collection[str] = (),
) -> str | None:
    """Why a request must get 403, in one pt-BR sentence; None to accept it.

    ``local_address`` and ``local_port`` are where the client connected (the server
    side of the socket; ``local_port=None`` skips the port check); ``allowed_hosts`` are
    extra names this server answers to, on any port. A repeated ``Host`` or ``Origin``
    header is refused too: it could be read two ways. ``check_origin=False`` checks the
    ``Host`` only (the page's own files). ``allowed_origins`` are other origins
    (:func:`parse_origin` form) whose pages may open ``/ws``: the other nodes of the
    chat. ``public_origins`` (:func:`parse_origin` form) are the addresses users reach
    through a proxy (``serve --public-url``): a ``Host`` naming one of them, with its
    port or with none (nginx's ``Host $host`` drops it), is this server's, and pages
    of those origins may open ``/ws``.
    """
    hosts, origins = headers.get_all("Host"), headers.get_all("Origin")
    if len(hosts) != 1 or len(origins) > 1:
        return "Cabeçalho Host ausente ou repetido, ou Origin repetido."
    host = hosts[0]
    name = host_name(host)
    public = [urlsplit(origin) for origin in public_origins]
    if any(
        name == url.hostname
        and host_port(host) in (None, url.port or (443 if url.scheme == "https" else 80))
        for url in public
    ):
        if (
            check_origin
            and origins
            and origins[0].lower() not in (*public_origins, *allowed_origins)
        ):
            return f"Origem não permitida: {origins[0][:80]!r} não é a origem deste servidor."
        return None
    allowed = {h.lower() for h in allowed_hosts}
    if name not in {"localhost", local_address.lower(), *allowed}:
        return (
            f"Host não reconhecido: {host[:80]!r} não é um nome deste servidor "
            "(use o endereço dele, ou inicie-o com --public-url ou --allow-host)."
        )
    if local_port is not None and name not in allowed and (host_port(host) or 80) != local_port:
        return f"Host não reconhecido: {host[:80]!r} não é a porta deste servidor ({local_port})."
    if not check_origin:
        return None
    if origins and origins[0].lower() not in (
        f"http://{host}".lower(),
        f"https://{host}".lower(),
        *(o.lower() for o in allowed_origins),
        *public_origins,
    ):
        return f"Origem não permitida: {origins[0][:80]!r} não é a origem deste servidor."
    return None


def refusal_page(reason: str) -> bytes:
    """A small HTML page that shows ``reason`` (escaped) to whoever opened the chat."""
    return (
        '<!doctype html><html lang="pt-BR"><meta charset="utf-8"><title>wslab chat</title>'
        f"<h1>O chat recusou este endereço</h1><p>{escape(reason)}</p></html>\n"
    ).encode()
