"""Parte 2 of the test: connect to the challenge server and read the message it sends.

``fetch_message`` walks the connection one phase at a time (DNS, TCP, TLS, the
WebSocket handshake done by websocket-client, the first message), timing each one
and naming the phase that failed in one pt-BR sentence. ``timeout`` covers the
whole attempt: every socket read and write is held to it (wslab.tap), so even a
server that drips one byte at a time cannot stretch it; only the clean close may
add up to one second more.

The free host sleeps when idle and takes up to about a minute to wake, so when the
name resolves the client keeps retrying the failures a waking host produces
(connect or handshake time-outs, HTTP 502/503/504) until ``timeout``, reporting each
retry through ``on_progress``. When the name does not resolve (no network) it gives
up at once.

``fetch_or_replica`` falls back to the local replica (wslab.replica) and marks the
result as such; ``python -m wslab.challenge`` is the command-line face of both.
``live_attempt`` is what the notebook calls: the same, unless WSLAB_LIVE=0.
"""

from __future__ import annotations

import argparse
import enum
import json
import os
import socket
import ssl
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable
from urllib.parse import urlsplit

import websocket

from wslab.protocol.frames import Close, ProtocolError
from wslab.protocol.handshake import HandshakeError, HandshakeRule, check_response, parse_response
from wslab.replica import PROVENANCE, Replica
from wslab.tap import TappedSocket, tapped_tls_context

DEFAULT_URL = "wss://websocket-fh6l.onrender.com"
DEFAULT_TIMEOUT = 75.0  # the host may take about a minute to wake up
DNS_TIMEOUT = 1.5  # no network must end in under 2 s
ATTEMPT_CAP = 20.0  # one attempt's longest wait, so progress shows while waking
RETRY_DELAY = 2.0
WAKING_STATUSES = {502, 503, 504}
CAPTURE_FIELDS = ("received_at", "url", "status", "response_headers", "request_head", "message")
LIVE_SWITCH = "WSLAB_LIVE"  # "0" turns off live_attempt (make test does)


class Failure(enum.Enum):
    """Each way an attempt can fail, with the pt-BR sentence that explains it."""

    DNS = "O nome {host} não foi resolvido (sem rede, ou nome inexistente): verifique a conexão com a internet."
    REFUSED = "A conexão com {host}:{port} foi recusada: nenhum servidor escuta nessa porta."
    CONNECT_TIMEOUT = "O servidor {host}:{port} não aceitou a conexão TCP em {waited:.1f} s: está fora do ar ou inalcançável."
    TLS = "A negociação TLS com {host} falhou ({reason}): certificado não confiável ou servidor sem TLS."
    HTTP_STATUS = "O servidor respondeu HTTP {status} em vez de 101 Switching Protocols: o endereço não aceita WebSocket agora."
    BAD_ACCEPT = "O servidor respondeu 101, mas o Sec-WebSocket-Accept não corresponde à chave enviada: o cliente recusou o handshake."
    BAD_UPGRADE = "O servidor respondeu 101 sem os cabeçalhos de upgrade exigidos: o cliente recusou o handshake."
    HANDSHAKE_TIMEOUT = "O servidor aceitou a conexão, mas não respondeu ao pedido de upgrade em {waited:.1f} s."
    CLOSED_EARLY = "O servidor fechou a conexão (código {code}) antes de enviar qualquer mensagem."
    DROPPED = "A conexão caiu antes de qualquer mensagem chegar."
    NO_MESSAGE = "Nenhuma mensagem chegou em {waited:.1f} s depois do handshake."
    UNREACHABLE = "Não foi possível chegar a {host}:{port} ({reason}): a rede não tem rota até o servidor."
    PROTOCOL = "O servidor enviou um frame inválido antes da mensagem ({reason}): o cliente encerrou a conexão."
    NOT_TRIED = "A tentativa ao vivo foi desligada nesta execução ({variable}=0, como em `make test`, cujos testes não acessam a internet)."

    def explain(self, **details: object) -> str:
        return self.value.format(**details)


@dataclass
class FetchResult:
    """What one attempt to read the server's first message produced."""

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


class _Failed(Exception):
    def __init__(self, failure: Failure, **details: object) -> None:
        super().__init__(failure.explain(**details))
        self.failure = failure
        self.details = details


def fetch_message(
    url: str = DEFAULT_URL,
    *,
    timeout: float = DEFAULT_TIMEOUT,
    read_timeout: float = 10.0,
    cafile: str | None = None,
    on_progress: Callable[[str], None] | None = None,
    source: str = "live",
) -> FetchResult:
    """Connect to ``url``, read the first text message, close cleanly.

    Never raises for network trouble: the result names the failure instead.
    ``timeout`` bounds the whole call, wake-up retries included (every socket
    read and write is held to it, plus at most one second to close cleanly);
    ``read_timeout`` bounds the wait for the first message after the handshake;
    ``cafile`` adds a certificate authority to trust for wss:// (the replica's).

    Raises:
        ValueError: if ``url`` is not a ws:// or wss:// URL with a host.
    """
    host, port, tls = _parse_url(url)
    progress = on_progress or (lambda text: None)
    result = FetchResult(url=url, source=source)
    start = time.perf_counter()
    deadline = start + timeout

    try:
        addresses = _resolve(host, port, min(DNS_TIMEOUT, timeout), result)
        progress(f"{host} resolvido; conectando (até {timeout:g} s, o servidor pode estar acordando)")
        while True:
            result.attempts += 1
            try:
                _attempt(url, host, port, addresses, tls, cafile, deadline, read_timeout, result)
                break
            except _Failed as failed:
                if not _worth_retrying(failed, deadline):
                    raise
                waited = time.perf_counter() - start
                progress(
                    f"tentativa {result.attempts}: {failed} Aguardando o servidor acordar "
                    f"({waited:.0f} s de {timeout:g} s)"
                )
                time.sleep(max(0.0, min(RETRY_DELAY, deadline - time.perf_counter())))
    except _Failed as failed:
        result.failure = failed.failure
        result.explanation = str(failed)
    result.elapsed = time.perf_counter() - start
    return result


def live_attempt(url: str = DEFAULT_URL, **options) -> FetchResult:
    """fetch_message(url), unless the environment turns live attempts off.

    ``make test`` sets WSLAB_LIVE=0 so that re-running the notebooks never reaches
    for the internet nor records a capture; the result then says so, by name.
    """
    if os.environ.get(LIVE_SWITCH) == "0":
        return FetchResult(
            url=url, source="live", failure=Failure.NOT_TRIED,
            explanation=Failure.NOT_TRIED.explain(variable=LIVE_SWITCH),
        )
    return fetch_message(url, **options)


def _parse_url(url: str) -> tuple[str, int, bool]:
    """(host, port, tls) of a ws:// or wss:// URL; a pt-BR ValueError otherwise."""
    problem = f"URL inválida: {url!r}; use ws://host[:porta]/ ou wss://host[:porta]/"
    parts = urlsplit(url)
    if parts.scheme not in ("ws", "wss") or not parts.hostname:
        raise ValueError(problem)
    try:
        port = parts.port
    except ValueError:
        raise ValueError(f"{problem} (a porta deve ser um número de 0 a 65535)") from None
    tls = parts.scheme == "wss"
    return parts.hostname, port or (443 if tls else 80), tls


def _worth_retrying(failed: _Failed, deadline: float) -> bool:
    """A waking host times out or answers 502/503/504; retry while time remains."""
    waking = failed.failure in (Failure.CONNECT_TIMEOUT, Failure.HANDSHAKE_TIMEOUT) or (
        failed.failure is Failure.HTTP_STATUS and failed.details.get("status") in WAKING_STATUSES
    )
    return waking and deadline - time.perf_counter() > RETRY_DELAY


def _resolve(host: str, port: int, limit: float, result: FetchResult) -> list[tuple]:
    """getaddrinfo in a daemon thread, so a stuck resolver cannot hold us past ``limit``."""
    answers: list = []
    started = time.perf_counter()
    worker = threading.Thread(target=_lookup, args=(host, port, answers), daemon=True)
    worker.start()
    worker.join(limit)
    result.phases["dns"] = time.perf_counter() - started
    if not answers or isinstance(answers[0], Exception):
        raise _Failed(Failure.DNS, host=host)
    return answers[0]


def _lookup(host: str, port: int, answers: list) -> None:
    try:
        answers.append(socket.getaddrinfo(host, port, type=socket.SOCK_STREAM))
    except (OSError, UnicodeError) as error:
        answers.append(error)


def _attempt(url, host, port, addresses, tls, cafile, deadline, read_timeout, result) -> None:
    """One connection from TCP to the first message; raises _Failed naming the phase."""
    attempt_deadline = min(deadline, time.perf_counter() + ATTEMPT_CAP)
    sock = _connect(addresses, host, port, attempt_deadline, result)
    try:
        if tls:
            sock = _start_tls(sock, host, cafile, attempt_deadline, result)
        ws = _handshake(url, sock, attempt_deadline, result)
        try:
            wait = min(read_timeout, _left(attempt_deadline))
            _read_first_message(ws, sock, wait, result)
        finally:
            sock.deadline = None
            try:
                ws.close(timeout=min(1.0, max(0.05, deadline - time.perf_counter())))
            except (websocket.WebSocketException, OSError):
                pass  # the peer is gone or broken; the socket is closed below anyway
    finally:
        sock.close()


def _connect(addresses, host, port, deadline, result) -> TappedSocket:
    """TCP to the first address that accepts, in resolver order (IPv6 may come first)."""
    failure = None
    with _phase(result, "tcp"):
        for family, kind, proto, _, sockaddr in addresses:
            sock = TappedSocket(family, kind, proto)
            wait = _left(deadline)
            sock.settimeout(wait)
            try:
                sock.connect(sockaddr)
            except ConnectionRefusedError:
                failure = _Failed(Failure.REFUSED, host=host, port=port)
            except TimeoutError:
                failure = _Failed(Failure.CONNECT_TIMEOUT, host=host, port=port, waited=wait)
            except OSError as error:
                failure = _Failed(Failure.UNREACHABLE, host=host, port=port, reason=error.strerror or error)
            else:
                sock.deadline = deadline
                return sock
            sock.close()
            if time.perf_counter() >= deadline:
                break
    raise failure


def _start_tls(sock, host, cafile, deadline, result) -> TappedSocket:
    with _phase(result, "tls"):
        sock.settimeout(_left(deadline))
        try:
            tls_sock = tapped_tls_context(cafile).wrap_socket(sock, server_hostname=host)
        except (ssl.SSLError, ssl.CertificateError) as error:
            raise _Failed(Failure.TLS, host=host, reason=_tls_reason(error)) from None
        except OSError as error:
            raise _Failed(Failure.TLS, host=host, reason=error.strerror or type(error).__name__) from None
    tls_sock.deadline = deadline
    return tls_sock


def _handshake(url, sock, deadline, result) -> websocket.WebSocket:
    wait = _left(deadline)
    try:
        with _phase(result, "handshake"):
            ws = websocket.create_connection(url, socket=sock, timeout=wait, enable_multithread=False)
    except websocket.WebSocketBadStatusException as error:
        result.status = error.status_code
        result.response_headers = dict(error.resp_headers or {})
        _keep_heads(sock, result)
        raise _Failed(Failure.HTTP_STATUS, status=error.status_code) from None
    except websocket.WebSocketTimeoutException:
        raise _Failed(Failure.HANDSHAKE_TIMEOUT, waited=wait) from None
    except (websocket.WebSocketConnectionClosedException, OSError):
        raise _Failed(Failure.DROPPED) from None
    except websocket.WebSocketException:
        _keep_heads(sock, result)
        raise _Failed(_diagnose_bad_upgrade(result)) from None
    result.status = ws.getstatus()
    result.response_headers = dict(ws.getheaders() or {})
    _keep_heads(sock, result)
    return ws


def _read_first_message(ws, sock, wait: float, result: FetchResult) -> None:
    """Skip control and binary frames; the first text frame is the answer."""
    ws.settimeout(wait)
    started = time.perf_counter()
    try:
        while True:
            opcode, frame = ws.recv_data_frame(control_frame=True)
            if opcode == websocket.ABNF.OPCODE_TEXT:
                break
            if opcode == websocket.ABNF.OPCODE_CLOSE:
                raise _Failed(Failure.CLOSED_EARLY, code=_close_code(frame.data))
    except websocket.WebSocketTimeoutException:
        raise _Failed(Failure.NO_MESSAGE, waited=wait) from None
    except (websocket.WebSocketConnectionClosedException, OSError):
        raise _Failed(Failure.DROPPED) from None
    except websocket.WebSocketException as error:  # bad frame: RSV bits, opcode, UTF-8...
        raise _Failed(Failure.PROTOCOL, reason=error) from None
    finally:
        result.phases["first_message"] = time.perf_counter() - started
    result.message = frame.data.decode("utf-8")  # websocket-client validated it
    result.received_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
    result.after_handshake = sock.received.partition(b"\r\n\r\n")[2]


def _close_code(payload: bytes) -> int | str:
    try:
        return Close.parse(payload).code
    except ProtocolError:
        return "inválido"


def _keep_heads(sock, result: FetchResult) -> None:
    result.request_head = _head(sock.sent)
    result.response_head = _head(sock.received)


def _head(data: bytes) -> str:
    return data.split(b"\r\n\r\n", 1)[0].decode("latin-1")


def _diagnose_bad_upgrade(result: FetchResult) -> Failure:
    """websocket-client says only 'Invalid WebSocket Header': find out whether the accept was wrong."""
    key = _header(result.request_head, "sec-websocket-key") or ""
    try:
        response, _ = parse_response(result.response_head.encode("latin-1") + b"\r\n\r\n")
        check_response(response, key)
    except HandshakeError as error:
        if error.rule is HandshakeRule.BAD_ACCEPT:
            return Failure.BAD_ACCEPT
    return Failure.BAD_UPGRADE


def _header(head: str, name: str) -> str | None:
    """A header of the request head we sent (the handshake module parses responses only)."""
    for line in head.split("\r\n")[1:]:
        field_name, _, value = line.partition(":")
        if field_name.strip().lower() == name:
            return value.strip()
    return None


def _tls_reason(error: Exception) -> str:
    return getattr(error, "verify_message", None) or getattr(error, "reason", None) or type(error).__name__


class _phase:
    """Times one phase into result.phases, whether it succeeds or fails."""

    def __init__(self, result: FetchResult, name: str) -> None:
        self.result, self.name = result, name

    def __enter__(self) -> None:
        self.started = time.perf_counter()

    def __exit__(self, *exc_info: object) -> None:
        self.result.phases[self.name] = time.perf_counter() - self.started


def _left(deadline: float) -> float:
    """Seconds left before ``deadline``; never zero, which sockets read as "no timeout"."""
    return max(0.05, deadline - time.perf_counter())


def fetch_or_replica(
    url: str = DEFAULT_URL,
    *,
    use_replica: bool = True,
    **options,
) -> tuple[FetchResult, FetchResult | None]:
    """Try ``url``; when it gives no message and ``use_replica``, ask the local replica.

    Returns (the attempt at ``url``, the replica's result or None). The second
    result's ``source`` is "replica", so nobody can mistake it for the live server.
    """
    live = fetch_message(url, **options)
    if live.ok or not use_replica:
        return live, None
    with Replica() as replica:
        local = fetch_message(replica.url, timeout=5.0, source="replica")
    return live, local


def save_capture(result: FetchResult, path: str | Path) -> None:
    """Keep a successful live attempt (time, URL, status, headers, message) as JSON."""
    if not result.ok or result.source != "live":
        raise ValueError("only a successful attempt at the live server is a capture")
    keep = {name: getattr(result, name) for name in CAPTURE_FIELDS}
    Path(path).write_text(json.dumps(keep, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")


def load_capture(path: str | Path) -> dict | None:
    """The last live capture, or None when no live run has ever succeeded."""
    path = Path(path)
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m wslab.challenge",
        description="Conecta ao servidor WebSocket do teste e mostra a mensagem que ele envia.",
    )
    parser.add_argument("url", nargs="?", default=DEFAULT_URL, help=f"padrão: {DEFAULT_URL}")
    parser.add_argument("--no-replica", action="store_true", help="não recorrer à réplica local em caso de falha")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, help="limite da tentativa inteira, em segundos")
    args = parser.parse_args(argv)
    if args.timeout <= 0:
        parser.error("--timeout deve ser positivo")

    print(f"Conectando a {args.url} (limite de {args.timeout:g} s)...", flush=True)
    try:
        live, local = fetch_or_replica(
            args.url,
            use_replica=not args.no_replica,
            timeout=args.timeout,
            on_progress=lambda text: print(f"  {text}", flush=True),
        )
    except ValueError as error:
        print(f"Erro: {error}")
        return 2
    if live.ok:
        print(f"Mensagem: {live.message}")
        print(f"Origem: servidor ao vivo ({live.url}), recebida em {live.received_at} UTC, em {live.elapsed:.2f} s.")
        return 0
    print(f"Falha ({live.failure.name}): {live.explanation}")
    if local is None:
        return 1
    if not local.ok:
        print(f"A réplica local também falhou: {local.explanation}")
        return 1
    print("ATENÇÃO: o servidor do teste não entregou a mensagem; a mensagem abaixo veio da RÉPLICA LOCAL.")
    print(f"Mensagem: {local.message}")
    print(f"Origem: réplica local ({local.url}), que reproduz a mensagem registrada: {PROVENANCE}.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
