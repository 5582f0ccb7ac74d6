"""The chat's errors: one tree under :class:`wslab.errors.WslabError`.

Every error the chat raises on purpose is one of these; a user-facing refusal carries
its pt-BR sentence (``str(error)``), and its close code when it implies one. Where a
standard type reads better to a caller, an error also derives from it (as websockets'
``InvalidState(WebSocketException, AssertionError)`` does): a bad name is a
``ValueError`` too, an unknown session a ``KeyError``. Classes are defined here unless
noted beside them (then next to the code that raises them)::

    WslabError                          wslab.errors
    ├── Refusal                         a connection not let in: close_code, the reason
    │   ├── AuthError                   4001: a registered name with another secret
    │   ├── BadHello                    4000: the first frame is no hello (rules.wire)
    │   └── BadName (+ ValueError)      4000: not a user name (rules.names)
    ├── Rejected                        one frame or line refused; the session stays
    │   ├── CommandError                a line that cannot be sent (/msg, /who, text)
    │   │   └── BadText (+ ValueError)  a character a line may not hold (rules.text)
    │   ├── BadMessage                  a frame after the hello that is no "say" (rules.wire)
    │   └── ReusedId                    a line's id its sender gave another line
    ├── StoreError                      a store (SQLite, Redis) failed: a pt-BR sentence
    │   └── BadRecord (+ ValueError)    a stored secret record that is corrupt (rules.kdf)
    ├── BadSetting (+ ValueError)       a setting of serve that cannot be used: exit 1
    ├── ProxyHeaderError                a PROXY header invalid or from an untrusted peer
    ├── UnknownSession (+ KeyError)     a session id that is not open (programmers')
    ├── ServeError                      serve as a child process did not start (testing.serve)
    ├── ValkeyError                     a local Valkey did not start (testing.valkey)
    └── CaddyError                      a local Caddy did not start (testing.caddy)

Who catches what: the service catches :class:`Refusal` when it opens a session (and
closes with its code and reason), :class:`Rejected` per frame (an error frame, the
session stays); the node turns a :class:`StoreError` met while opening a session into
a :class:`Refusal` (1012: resume later) and one met on a line into an error notice;
the CLI prints :class:`BadSetting` and :class:`StoreError` and exits 1.
"""

from __future__ import annotations

from enum import IntEnum

from ..errors import WslabError

__all__ = [
    "AuthError",
    "BadSetting",
    "CloseCode",
    "CommandError",
    "ProxyHeaderError",
    "Refusal",
    "Rejected",
    "ReusedId",
    "StoreError",
    "UnknownSession",
]


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

    close_code: int

    def __init__(self, reason: str, close_code: int = CloseCode.BAD_HELLO) -> None:
        super().__init__(reason)
        self.close_code = close_code


class AuthError(Refusal):
    """A registered name used with another secret (4001)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason, CloseCode.BAD_SECRET)


class Rejected(WslabError):
    """One frame or line not accepted; ``str(self)`` goes back in an error frame."""


class CommandError(Rejected):
    """A line that cannot be sent; ``str(error)`` is the sentence shown to the user
    (raised by :func:`wslab.chat.rules.commands.parse_line` and the node)."""


class ReusedId(Rejected):
    """A line whose id its sender gave a different line less than
    :data:`~wslab.chat.rules.wire.RESEND_SECONDS` ago: refused (not stored), since
    storing it would break the promise that an id names one line (raised by the
    stores)."""

    def __init__(self) -> None:
        super().__init__(
            "Este id de mensagem já foi usado para outra mensagem sua: ela não foi "
            "guardada; envie-a com um id novo."
        )


class StoreError(WslabError):
    """A store could not do what was asked; ``str(self)`` says what, in pt-BR."""


class BadSetting(WslabError, ValueError):
    """A setting of ``serve`` that cannot be used (a certificate, a network, a URL):
    ``str(self)`` is one pt-BR sentence, which the CLI prints before it exits 1."""


class ProxyHeaderError(WslabError):
    """A PROXY protocol header that is not valid (a pt-BR sentence): the connection must
    be aborted (HAProxy's specification, 2.1)."""


class UnknownSession(WslabError, KeyError):
    """A session id that is not open (never opened, or closed): a caller's mistake, or
    a race it expects (a session closed while a line of it was being stored). In pt-BR
    although programmers meet it: notebook 04's readers do, through ``ChatModel``."""

    def __init__(self, session_id: object) -> None:
        super().__init__(f"Sessão desconhecida ou já encerrada: {session_id!r}.")
        self.session_id = session_id

    def __str__(self) -> str:  # KeyError's own would show the sentence quoted
        return str(self.args[0])
