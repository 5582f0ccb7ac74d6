"""What one attempt to read the server's first message produced, and how it failed.

Plain values with no I/O: the client (:mod:`.client`) builds them, the answer
(:mod:`.answer`) and the notebooks read them.
"""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wslab.errors import WslabError

CAPTURE_FIELDS = ("received_at", "url", "status", "response_headers", "request_head", "message")


class Failure(enum.Enum):
    """Each way an attempt can fail, with the pt-BR sentence that explains it."""

    DNS = "O nome {host} não foi resolvido (sem rede, ou nome inexistente): verifique a conexão com a internet."
    REFUSED = "A conexão com {host}:{port} foi recusada: nenhum servidor escuta nessa porta."
    CONNECT_TIMEOUT = "O servidor {host}:{port} não aceitou a conexão TCP em {waited:.1f} s: está fora do ar ou inalcançável."
    TLS = "A negociação TLS com {host} falhou ({reason}): certificado não confiável ou servidor sem TLS."
    HTTP_STATUS = "O servidor respondeu HTTP {status} em vez de 101 Switching Protocols: o endereço não aceita WebSocket agora."
    BAD_ACCEPT = "O servidor respondeu 101, mas o Sec-WebSocket-Accept não corresponde à chave enviada: o cliente recusou o handshake."
    BAD_UPGRADE = "O servidor respondeu 101 sem os cabeçalhos de upgrade exigidos: o cliente recusou o handshake."
    HANDSHAKE_TIMEOUT = (
        "O servidor aceitou a conexão, mas não respondeu ao pedido de upgrade em {waited:.1f} s."
    )
    CLOSED_EARLY = "O servidor fechou a conexão (código {code}) antes de enviar qualquer mensagem."
    DROPPED = "A conexão caiu antes de qualquer mensagem chegar."
    NO_MESSAGE = "Nenhuma mensagem chegou em {waited:.1f} s depois do handshake."
    UNREACHABLE = (
        "Não foi possível chegar a {host}:{port} ({reason}): a rede não tem rota até o servidor."
    )
    PROTOCOL = "O servidor enviou um frame inválido antes da mensagem ({reason}): o cliente encerrou a conexão."
    NOT_TRIED = "A tentativa ao vivo foi desligada nesta execução ({variable}=0, como em `make test`, cujos testes não acessam a internet)."

    def explain(self, **details: object) -> str:
        return self.value.format(**details)


class InvalidURL(WslabError):
    """The URL given to the client is not ws:// or wss:// with a host (pt-BR message)."""


@dataclass(frozen=True)
class Exchange:
    """The opening handshake as it crossed the wire (heads as text, status and headers)."""

    request_head: str = ""  # the upgrade request as sent
    response_head: str = ""  # the upgrade response as received
    status: int | None = None
    response_headers: dict[str, str] = field(default_factory=dict)


@dataclass
class FetchResult:
    """What one call of ``fetch_message`` produced: the message, or the named failure."""

    url: str
    source: str  # "live" (the URL asked) or "replica" (the local stand-in)
    message: str | None = None
    failure: Failure | None = None
    explanation: str | None = None  # one pt-BR sentence when failure is set
    phases: dict[str, float] = field(default_factory=dict)  # seconds, in order
    status: int | None = None
    response_headers: dict[str, str] = field(default_factory=dict)
    request_head: str = ""  # the upgrade request as sent
    response_head: str = ""  # the upgrade response as received
    after_handshake: bytes = b""  # raw bytes received after the response head (the frames)
    attempts: int = 0
    elapsed: float = 0.0
    received_at: str | None = None  # UTC, ISO 8601, when the message arrived

    @property
    def ok(self) -> bool:
        return self.message is not None


def save_capture(result: FetchResult, path: str | Path) -> None:
    """Keep a successful live attempt (time, URL, status, headers, message) as JSON."""
    if not result.ok or result.source != "live":
        raise ValueError("only a successful attempt at the live server is a capture")
    keep = {name: getattr(result, name) for name in CAPTURE_FIELDS}
    Path(path).write_text(json.dumps(keep, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")


def load_capture(path: str | Path) -> dict[str, Any] | None:
    """The last live capture, or None when no live run has ever succeeded."""
    path = Path(path)
    if not path.exists():
        return None
    capture: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return capture
