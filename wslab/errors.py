"""The project's one error tree: every error wslab raises on purpose derives from
:class:`WslabError`.

An error that implies a WebSocket close code carries it in ``close_code`` (as
wsproto's ``ParseFailed`` does), so the code that catches it knows what to send
without re-deriving it. "Need more bytes" is not an error: parsers return a value for
it (see :mod:`wslab.protocol`). ``str(error)`` is one sentence; for errors that reach a
user (on the wire, in the CLI) it is in pt-BR.

Subpackages define their own subclasses next to the code that raises them; this
module holds only the root::

    WslabError
    ├── ProtocolError               bytes that break RFC 6455 (wslab.protocol.errors)
    │   └── HandshakeError          ... in the opening handshake; an HTTP status
    ├── AttemptFailed               a named failure of the challenge client (wslab.challenge)
    ├── InvalidURL                  not a ws:// or wss:// URL (wslab.challenge.result)
    ├── OutOfOrder                  a notebook cell run out of order (wslab.notebook)
    └── the chat's tree             drawn in wslab.chat.errors
"""

from __future__ import annotations

__all__ = ["WslabError"]


class WslabError(Exception):
    """Base of every error raised on purpose by wslab.

    ``close_code`` is the WebSocket close code the error implies, or None when it
    implies none.
    """

    close_code: int | None = None
