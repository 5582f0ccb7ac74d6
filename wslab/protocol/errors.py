"""The errors of the protocol core, and the value that means "need more bytes".

``ProtocolError`` means the bytes break a rule of RFC 6455; its ``rule`` (a
``frames.Rule`` or a ``handshake.HandshakeRule``) names which one, so callers and
tests can tell them apart, and ``close_code`` is the close code a peer sends for it
(1002 for most frame rules, 1007 for bad UTF-8, 1009 for too big; None for the
handshake, which happens before there is a WebSocket to close).

``HandshakeError`` is the ``ProtocolError`` of the opening handshake; ``status`` is
the HTTP status a server answers a bad request with (400, or 426 for an unsupported
version), None when the client found the server's response wrong.

``NeedData`` is not an error: parsers *return* it (like h11's ``NEED_DATA``) when the
bytes seen so far are a valid beginning and more are needed, so an ``except`` written
for bad input never swallows "not yet".
"""

from __future__ import annotations

import dataclasses
import enum

from wslab.errors import WslabError

__all__ = ["ProtocolError", "HandshakeError", "NeedData"]


class ProtocolError(WslabError):
    """Input that breaks a rule of RFC 6455; ``rule`` says which, ``close_code`` what to send.

    ``rule`` is an enum member whose value is the rule's text and which may define
    a ``close_code`` property (frame rules do).
    """

    def __init__(self, rule: enum.Enum, detail: str = "") -> None:
        self.rule = rule
        self.detail = detail
        self.close_code = getattr(rule, "close_code", None)
        message = f"{rule.name}: {rule.value}"
        super().__init__(f"{message}; {detail}" if detail else message)


class HandshakeError(ProtocolError):
    """An opening handshake that breaks a rule of section 4; ``status`` is the HTTP answer."""

    def __init__(self, rule: enum.Enum, detail: str = "", *, status: int | None = None) -> None:
        super().__init__(rule, detail)
        self.status = status


@dataclasses.dataclass(frozen=True)
class NeedData:
    """Returned by a parser when the input is a valid but truncated beginning.

    ``needed`` is a lower bound on the total input the parser needs to go on: with
    that many bytes it finishes or returns a larger ``needed``.
    """

    needed: int
