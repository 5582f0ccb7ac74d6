"""Sans-I/O client side of the WebSocket opening handshake (RFC 6455, section 4).

Builds the HTTP/1.1 Upgrade request, parses the server's response head and checks
it. The caller moves the bytes; nothing here opens a socket.

Errors:
    ``HandshakeError`` (a ``ValueError``) means the response breaks a rule of
    section 4.1; its ``rule`` attribute (a ``HandshakeRule``) says which.
    ``parse_response`` raises ``wslab.frames.Incomplete`` while the blank line
    that ends the response head has not arrived yet.
"""
from __future__ import annotations

import base64
import dataclasses
import enum
import hashlib
import os
from collections.abc import Iterable
from urllib.parse import urlsplit

from .frames import Incomplete

__all__ = [
    "GUID",
    "HandshakeRule",
    "HandshakeError",
    "Response",
    "accept_key",
    "generate_key",
    "build_request",
    "parse_response",
    "check_response",
]

#: The fixed string of RFC 6455 section 1.3 that the server appends to the key.
GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

#: Upper bound on the response head, so a server that never ends it cannot grow memory.
MAX_HEAD_SIZE = 16 * 1024


class HandshakeRule(enum.Enum):
    """The rule of RFC 6455 section 4 that a ``HandshakeError`` reports as broken."""

    BAD_URL = "the URL must be ws:// or wss:// with a host (3)"
    BAD_KEY = "Sec-WebSocket-Key is a base64-encoded 16-byte value (4.1)"
    MALFORMED_RESPONSE = "the response head must be a valid HTTP/1.1 status line and headers (4.1)"
    HEAD_TOO_LARGE = f"the response head must end within {MAX_HEAD_SIZE} bytes"
    NOT_SWITCHING = "the status code must be 101 Switching Protocols (4.1)"
    MISSING_UPGRADE = "the response needs Upgrade: websocket (4.1)"
    MISSING_CONNECTION = "the response needs Connection: Upgrade (4.1)"
    MISSING_ACCEPT = "the response needs Sec-WebSocket-Accept (4.1)"
    BAD_ACCEPT = "Sec-WebSocket-Accept must be base64(SHA-1(key + GUID)) (4.1)"
    UNEXPECTED_EXTENSION = "the server may not select an extension the client did not offer (4.1)"
    UNEXPECTED_SUBPROTOCOL = "the server may not select a subprotocol the client did not offer (4.1)"


class HandshakeError(ValueError):
    """A handshake request or response that breaks a rule; ``rule`` says which."""

    def __init__(self, rule: HandshakeRule, detail: str = "") -> None:
        self.rule = rule
        self.detail = detail
        message = f"{rule.name}: {rule.value}"
        super().__init__(f"{message}; {detail}" if detail else message)


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


def _check_key(key: str) -> None:
    try:
        raw = base64.b64decode(key.encode("ascii"), validate=True)
    except (ValueError, UnicodeEncodeError):
        raise HandshakeError(HandshakeRule.BAD_KEY, f"{key!r} is not base64") from None
    if len(raw) != 16:
        raise HandshakeError(HandshakeRule.BAD_KEY, f"{key!r} decodes to {len(raw)} bytes")


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
    host = parts.hostname
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
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


@dataclasses.dataclass(frozen=True)
class Response:
    """The head of an HTTP/1.1 response: status line and headers, in order."""

    status: int
    reason: str
    headers: tuple[tuple[str, str], ...]

    def get(self, name: str) -> str | None:
        """The value of header ``name`` (case-insensitive), repeated ones joined by ', '."""
        values = [v for n, v in self.headers if n.lower() == name.lower()]
        return ", ".join(values) if values else None


def parse_response(data: bytes) -> tuple[Response, int]:
    """Parse the response head at the start of ``data``; return it and its size.

    Bytes after the blank line belong to the WebSocket connection (the server may
    send its first frame right behind the 101) and are left to the caller.

    Raises:
        Incomplete: if the blank line ending the head has not arrived yet.
        HandshakeError(MALFORMED_RESPONSE or HEAD_TOO_LARGE).
    """
    end = data.find(b"\r\n\r\n")
    if end < 0:
        if len(data) > MAX_HEAD_SIZE:
            raise HandshakeError(HandshakeRule.HEAD_TOO_LARGE, f"{len(data)} bytes so far")
        raise Incomplete(len(data) + 1, len(data))
    if end + 4 > MAX_HEAD_SIZE:
        raise HandshakeError(HandshakeRule.HEAD_TOO_LARGE, f"{end + 4} bytes")
    try:
        head = bytes(data[:end]).decode("iso-8859-1")
    except UnicodeDecodeError:  # pragma: no cover - latin-1 decodes any byte
        raise HandshakeError(HandshakeRule.MALFORMED_RESPONSE) from None
    status_line, *header_lines = head.split("\r\n")
    version, _, rest = status_line.partition(" ")
    code, _, reason = rest.partition(" ")
    if version != "HTTP/1.1" or len(code) != 3 or not code.isdigit():
        raise HandshakeError(HandshakeRule.MALFORMED_RESPONSE, f"status line {status_line!r}")
    headers = []
    for line in header_lines:
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip() or " " in name:
            raise HandshakeError(HandshakeRule.MALFORMED_RESPONSE, f"header line {line!r}")
        headers.append((name, value.strip(" \t")))
    return Response(int(code), reason, tuple(headers)), end + 4


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
        raise HandshakeError(
            HandshakeRule.BAD_ACCEPT, f"expected {expected}, got {accept.strip()}"
        )
    if not offered_extensions and response.get("Sec-WebSocket-Extensions"):
        raise HandshakeError(
            HandshakeRule.UNEXPECTED_EXTENSION, response.get("Sec-WebSocket-Extensions") or ""
        )
    if not offered_subprotocols and response.get("Sec-WebSocket-Protocol"):
        raise HandshakeError(
            HandshakeRule.UNEXPECTED_SUBPROTOCOL, response.get("Sec-WebSocket-Protocol") or ""
        )
