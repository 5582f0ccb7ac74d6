"""The chat's errors, under :class:`wslab.errors.WslabError`.

- :class:`Refusal`: a connection is not let in (bad hello, wrong secret, bad name,
  throttled, over a cap); it carries the close code, and its text is the close reason.
  The server catches only this type when it opens a session.
- :class:`Rejected`: one frame or line is not accepted (bad JSON, a command error, over
  the rate limit, the store failed); the session stays open and its text is sent back
  in an error frame.
- :class:`StoreError`: a store (SQLite, Redis) failed; its text is one pt-BR sentence
  for the log and the user, never a traceback.
- :class:`ProxyHeaderError`: a PROXY protocol header that is not valid, or that came
  from a peer not trusted to send one; the connection is refused before any HTTP.
"""

from __future__ import annotations

from enum import IntEnum

from ..errors import WslabError

__all__ = ["AuthError", "CloseCode", "ProxyHeaderError", "Refusal", "Rejected", "StoreError"]


class CloseCode(IntEnum):
    """Every close code the chat sends: the standard ones it uses (RFC 6455 §7.4.1 and
    IANA's registry) and those of the application range (4000-4999) it defines. An
    ``int``, so websockets takes it as is; the rules need not import websockets."""

    NORMAL_CLOSURE = 1000
    GOING_AWAY = 1001  # the server stops
    MESSAGE_TOO_BIG = 1009  # a frame over 16 KiB (websockets sends it)
    SERVICE_RESTART = 1012  # the store lost its data or cannot be reached: resume
    TRY_AGAIN_LATER = 1013  # too slow to read, or a cap is reached
    BAD_HELLO = 4000
    BAD_SECRET = 4001
    NAME_LIMIT = 4003  # too many new names registered from here, or in total
    THROTTLED = 4029  # too many wrong secrets for this name or from this address


class Refusal(WslabError):
    """A connection refused: ``close_code`` to send and ``str(self)`` as the reason."""

    def __init__(self, reason: str, close_code: int = CloseCode.BAD_HELLO) -> None:
        super().__init__(reason)
        self.close_code = close_code


class AuthError(Refusal):
    """A registered name used with another secret (4001)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason, CloseCode.BAD_SECRET)


class Rejected(WslabError):
    """One frame or line not accepted; ``str(self)`` goes back in an error frame."""


class StoreError(WslabError):
    """A store could not do what was asked; ``str(self)`` says what, in pt-BR."""


class ProxyHeaderError(WslabError):
    """A PROXY protocol header that is not valid (a pt-BR sentence): the connection must
    be aborted (HAProxy's specification, 2.1)."""
