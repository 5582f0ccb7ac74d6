"""Sans-I/O WebSocket opening handshake, both sides (RFC 6455, section 4).

Client: ``build_request`` makes the HTTP/1.1 Upgrade request, ``parse_response`` and
``check_response`` read and check the server's answer. Server: ``parse_request``
reads a client's request head and ``accept`` answers it with the 101 response, or
with a 400/426 response naming the broken rule (as websockets'
``ServerProtocol.accept`` does). The caller moves the bytes; nothing here opens a
socket, and no subprotocol or extension is ever negotiated.

Errors (see :mod:`wslab.protocol.errors`):
    ``HandshakeError`` means a request or response breaks a rule of section 4; its
    ``rule`` (a ``HandshakeRule``) says which, and on the server side ``status`` is
    the HTTP status to answer with. The parsers return ``NeedData`` while the blank
    line that ends the head has not arrived yet.
"""

from __future__ import annotations

import base64
import dataclasses
import enum
import hashlib
import os
from collections.abc import Iterable
from urllib.parse import urlsplit

from .errors import HandshakeError, NeedData

__all__ = [
    "GUID",
    "HandshakeRule",
    "HandshakeError",
    "Request",
    "Response",
    "accept_key",
    "generate_key",
    "build_request",
    "parse_response",
    "check_response",
    "parse_request",
    "check_request",
    "accept",
    "switching_protocols",
    "reject",
    "url_host",
]

#: The fixed string of RFC 6455 section 1.3 that the server appends to the key.
GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

#: Upper bound on the response head, so a server that never ends it cannot grow memory.
MAX_HEAD_SIZE = 16 * 1024


class HandshakeRule(enum.Enum):
    """The rule of RFC 6455 section 4 that a ``HandshakeError`` reports as broken."""

    BAD_URL = "the URL must be ws:// or wss:// with a host (3)"
    BAD_KEY = "Sec-WebSocket-Key is a base64-encoded 16-byte value (4.1)"
    MALFORMED_REQUEST = "the request head must be an HTTP/1.1 GET request line and headers (4.1)"
    MISSING_HOST = "the request needs a Host header (4.1)"
    BAD_VERSION = "Sec-WebSocket-Version must be 13 (4.1, 4.4)"
    MALFORMED_RESPONSE = "the response head must be a valid HTTP/1.1 status line and headers (4.1)"
    HEAD_TOO_LARGE = f"an HTTP head must end within {MAX_HEAD_SIZE} bytes"
    NOT_SWITCHING = "the status code must be 101 Switching Protocols (4.1)"
    MISSING_UPGRADE = "the handshake needs Upgrade: websocket (4.1)"
    MISSING_CONNECTION = "the handshake needs Connection: Upgrade (4.1)"
    MISSING_ACCEPT = "the response needs Sec-WebSocket-Accept (4.1)"
    BAD_ACCEPT = "Sec-WebSocket-Accept must be base64(SHA-1(key + GUID)) (4.1)"
    UNEXPECTED_EXTENSION = "the server may not select an extension the client did not offer (4.1)"
    UNEXPECTED_SUBPROTOCOL = (
        "the server may not select a subprotocol the client did not offer (4.1)"
    )


def accept_key(key: str) -> str:
    """Sec-WebSocket-Accept for a Sec-WebSocket-Key: base64(SHA-1(key + GUID)) (4.2.2)."""
    digest = hashlib.sha1((key + GUID).encode("ascii")).digest()
    return base64.b64encode(digest).decode("ascii")


def generate_key(nonce: bytes | None = None) -> str:
    """A Sec-WebSocket-Key: 16 bytes, base64-encoded (24 characters).

    A real client must use a fresh random nonce (the default, ``os.urandom(16)``);
    a fixed ``nonce`` is accepted so examples and tests are reproducible.

    Raises:
        HandshakeError(BAD_KEY): if ``nonce`` is not 16 bytes.
    """
    if nonce is None:
        nonce = os.urandom(16)
    if len(nonce) != 16:
        raise HandshakeError(HandshakeRule.BAD_KEY, f"nonce of {len(nonce)} bytes")
    return base64.b64encode(nonce).decode("ascii")


def _check_key(key: str, status: int | None = None) -> None:
    try:
        raw = base64.b64decode(key.encode("ascii"), validate=True)
    except (ValueError, UnicodeEncodeError):
        raise HandshakeError(
            HandshakeRule.BAD_KEY, f"{key!r} is not base64", status=status
        ) from None
    if len(raw) != 16:
        raise HandshakeError(
            HandshakeRule.BAD_KEY, f"{key!r} decodes to {len(raw)} bytes", status=status
        )


def url_host(host: str) -> str:
    """``host`` as it appears in a URL or a Host header: IPv6 literals in brackets (3)."""
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def build_request(
    url: str,
    key: str,
    *,
    extra_headers: Iterable[tuple[str, str]] = (),
) -> bytes:
    """The opening handshake request for ``url``, as bytes ready to send (4.1).

    The Host header carries the port only when it is not the scheme's default
    (80 for ws://, 443 for wss://), as browsers do.

    Raises:
        HandshakeError(BAD_URL or BAD_KEY).
    """
    parts = urlsplit(url)
    if parts.scheme not in ("ws", "wss") or not parts.hostname:
        raise HandshakeError(HandshakeRule.BAD_URL, repr(url))
    if parts.fragment:
        raise HandshakeError(HandshakeRule.BAD_URL, "a WebSocket URL has no #fragment")
    _check_key(key)
    default_port = 443 if parts.scheme == "wss" else 80
    host = url_host(parts.hostname)
    if parts.port is not None and parts.port != default_port:
        host = f"{host}:{parts.port}"
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    lines = [
        f"GET {target} HTTP/1.1",
        f"Host: {host}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {key}",
        "Sec-WebSocket-Version: 13",
    ]
    for name, value in extra_headers:
        if any(c in name + value for c in "\r\n") or ":" in name:
            raise ValueError(f"header {name!r} is not a single valid header line")
        lines.append(f"{name}: {value}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("ascii")


class _Head:
    headers: tuple[tuple[str, str], ...]

    def get(self, name: str) -> str | None:
        """The value of header ``name`` (case-insensitive), repeated ones joined by ', '."""
        values = [v for n, v in self.headers if n.lower() == name.lower()]
        return ", ".join(values) if values else None


@dataclasses.dataclass(frozen=True)
class Request(_Head):
    """The head of an HTTP/1.1 request: request line and headers, in order."""

    method: str
    target: str
    headers: tuple[tuple[str, str], ...]


@dataclasses.dataclass(frozen=True)
class Response(_Head):
    """An HTTP/1.1 response: status line, headers in order, and a body (empty for 101)."""

    status: int
    reason: str
    headers: tuple[tuple[str, str], ...]
    body: bytes = b""

    def serialize(self) -> bytes:
        """The response as bytes ready to send."""
        lines = [f"HTTP/1.1 {self.status} {self.reason}"]
        lines += [f"{name}: {value}" for name, value in self.headers]
        return ("\r\n".join(lines) + "\r\n\r\n").encode("iso-8859-1") + self.body


def _split_head(
    data: bytes, malformed: HandshakeRule, status: int | None
) -> tuple[str, tuple[tuple[str, str], ...], int] | NeedData:
    """(first line, headers, head size) of the HTTP head at the start of ``data``."""
    end = data.find(b"\r\n\r\n")
    if end < 0:
        if len(data) > MAX_HEAD_SIZE:
            raise HandshakeError(
                HandshakeRule.HEAD_TOO_LARGE, f"{len(data)} bytes so far", status=status
            )
        return NeedData(len(data) + 1)
    if end + 4 > MAX_HEAD_SIZE:
        raise HandshakeError(HandshakeRule.HEAD_TOO_LARGE, f"{end + 4} bytes", status=status)
    head = bytes(data[:end]).decode("iso-8859-1")  # latin-1 decodes any byte
    first_line, *header_lines = head.split("\r\n")
    headers = []
    for line in header_lines:
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip() or " " in name:
            raise HandshakeError(malformed, f"header line {line!r}", status=status)
        headers.append((name, value.strip(" \t")))
    return first_line, tuple(headers), end + 4


def parse_response(data: bytes) -> tuple[Response, int] | NeedData:
    """Parse the response head at the start of ``data``; return it and its size.

    Bytes after the blank line belong to the WebSocket connection (the server may
    send its first frame right behind the 101) and are left to the caller. Returns
    ``NeedData`` if the blank line ending the head has not arrived yet.

    Raises:
        HandshakeError(MALFORMED_RESPONSE or HEAD_TOO_LARGE).
    """
    head = _split_head(data, HandshakeRule.MALFORMED_RESPONSE, None)
    if isinstance(head, NeedData):
        return head
    status_line, headers, size = head
    version, _, rest = status_line.partition(" ")
    code, _, reason = rest.partition(" ")
    if version != "HTTP/1.1" or len(code) != 3 or not code.isdigit():
        raise HandshakeError(HandshakeRule.MALFORMED_RESPONSE, f"status line {status_line!r}")
    return Response(int(code), reason, headers), size


def _tokens(value: str | None) -> set[str]:
    return {t.strip().lower() for t in (value or "").split(",") if t.strip()}


def check_response(
    response: Response,
    key: str,
    *,
    offered_extensions: bool = False,
    offered_subprotocols: bool = False,
) -> None:
    """Check a parsed response completes the handshake started with ``key`` (4.1).

    Raises:
        HandshakeError(NOT_SWITCHING, MISSING_UPGRADE, MISSING_CONNECTION,
            MISSING_ACCEPT, BAD_ACCEPT, UNEXPECTED_EXTENSION or
            UNEXPECTED_SUBPROTOCOL).
    """
    if response.status != 101:
        raise HandshakeError(
            HandshakeRule.NOT_SWITCHING, f"got {response.status} {response.reason}"
        )
    if "websocket" not in _tokens(response.get("Upgrade")):
        raise HandshakeError(HandshakeRule.MISSING_UPGRADE, f"Upgrade: {response.get('Upgrade')}")
    if "upgrade" not in _tokens(response.get("Connection")):
        raise HandshakeError(
            HandshakeRule.MISSING_CONNECTION, f"Connection: {response.get('Connection')}"
        )
    accept = response.get("Sec-WebSocket-Accept")
    if accept is None:
        raise HandshakeError(HandshakeRule.MISSING_ACCEPT)
    expected = accept_key(key)
    if accept.strip() != expected:
        raise HandshakeError(HandshakeRule.BAD_ACCEPT, f"expected {expected}, got {accept.strip()}")
    if not offered_extensions and response.get("Sec-WebSocket-Extensions"):
        raise HandshakeError(
            HandshakeRule.UNEXPECTED_EXTENSION, response.get("Sec-WebSocket-Extensions") or ""
        )
    if not offered_subprotocols and response.get("Sec-WebSocket-Protocol"):
        raise HandshakeError(
            HandshakeRule.UNEXPECTED_SUBPROTOCOL, response.get("Sec-WebSocket-Protocol") or ""
        )


# -- server side ----------------------------------------------------------------------


def parse_request(data: bytes) -> tuple[Request, int] | NeedData:
    """Parse a client's request head at the start of ``data``; return it and its size.

    Returns ``NeedData`` if the blank line ending the head has not arrived yet.

    Raises:
        HandshakeError(MALFORMED_REQUEST or HEAD_TOO_LARGE), with ``status`` 400.
    """
    head = _split_head(data, HandshakeRule.MALFORMED_REQUEST, 400)
    if isinstance(head, NeedData):
        return head
    request_line, headers, size = head
    method, target, version = (request_line.split(" ") + ["", ""])[:3]
    if method != "GET" or not target or version != "HTTP/1.1" or request_line.count(" ") != 2:
        raise HandshakeError(
            HandshakeRule.MALFORMED_REQUEST, f"request line {request_line!r}", status=400
        )
    return Request(method, target, headers), size


def check_request(request: Request) -> str:
    """Check a parsed request opens a WebSocket (4.1, 4.2.1); return its Sec-WebSocket-Key.

    Raises:
        HandshakeError(MISSING_HOST, MISSING_UPGRADE, MISSING_CONNECTION or BAD_KEY)
            with ``status`` 400, or HandshakeError(BAD_VERSION) with ``status`` 426.
    """
    if not request.get("Host"):
        raise HandshakeError(HandshakeRule.MISSING_HOST, status=400)
    if "websocket" not in _tokens(request.get("Upgrade")):
        raise HandshakeError(
            HandshakeRule.MISSING_UPGRADE, f"Upgrade: {request.get('Upgrade')}", status=400
        )
    if "upgrade" not in _tokens(request.get("Connection")):
        raise HandshakeError(
            HandshakeRule.MISSING_CONNECTION, f"Connection: {request.get('Connection')}", status=400
        )
    key = request.get("Sec-WebSocket-Key")
    if key is None:
        raise HandshakeError(HandshakeRule.BAD_KEY, "missing", status=400)
    _check_key(key, status=400)
    version = request.get("Sec-WebSocket-Version")
    if version != "13":
        raise HandshakeError(
            HandshakeRule.BAD_VERSION, f"Sec-WebSocket-Version: {version}", status=426
        )
    return key


def switching_protocols(key: str) -> Response:
    """The 101 response that completes the handshake opened with ``key`` (4.2.2)."""
    return Response(
        101,
        "Switching Protocols",
        (
            ("Upgrade", "websocket"),
            ("Connection", "Upgrade"),
            ("Sec-WebSocket-Accept", accept_key(key)),
        ),
    )


_REASONS = {400: "Bad Request", 426: "Upgrade Required"}


def reject(error: HandshakeError) -> Response:
    """The error response a server sends for a request ``check_request`` refused.

    The body is one pt-BR sentence naming the rule; a 426 says which version is spoken.
    """
    status = error.status or 400
    body = f"Handshake WebSocket recusado: {error.rule.value}.\n".encode()
    headers = [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(body)))]
    if status == 426:
        headers.append(("Sec-WebSocket-Version", "13"))
    headers.append(("Connection", "close"))
    return Response(status, _REASONS.get(status, "Bad Request"), tuple(headers), body)


def accept(request: Request) -> Response:
    """The server's answer to a parsed request: ``switching_protocols`` or ``reject``."""
    try:
        key = check_request(request)
    except HandshakeError as error:
        return reject(error)
    return switching_protocols(key)
