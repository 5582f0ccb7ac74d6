"""Parte 2 of the test: connect to the challenge server and read the message it sends.

``fetch_message`` walks the connection one phase at a time (DNS, TCP, TLS, the
WebSocket handshake done by websocket-client, the first message), timing each one
and naming the phase that failed in one pt-BR sentence. ``timeout`` covers the
whole attempt: every socket read and write is held to it (:mod:`.tap`), so even a
server that drips one byte at a time cannot stretch it; only the clean close may
add up to one second more.

The free host sleeps when idle and takes up to about a minute to wake, so when the
name resolves the client keeps retrying the failures a waking host produces
(connect or handshake time-outs, HTTP 502/503/504) until ``timeout``, reporting each
retry through ``on_progress``. When the name does not resolve (no network) it gives
up at once.

``fetch_or_replica`` falls back to the local replica (:mod:`.replica`) and marks the
result as such; ``python -m wslab.challenge`` (:mod:`.cli`) is the command-line face
of both. ``live_attempt`` is what the notebook calls: the same, unless WSLAB_LIVE=0.
"""

from __future__ import annotations

import contextlib
import os
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast
from urllib.parse import urlsplit

import websocket

from wslab.errors import WslabError
from wslab.protocol import HandshakeError, NeedData, ProtocolError
from wslab.protocol.frames import Close
from wslab.protocol.handshake import HandshakeRule, check_response, parse_request, parse_response

from .provenance import DEFAULT_URL
from .replica import Replica
from .result import Exchange, Failure, FetchResult, InvalidURL
from .tap import TappedSocket, TappedSSLSocket, tapped_tls_context

DEFAULT_TIMEOUT = 75.0  # the host may take about a minute to wake up
DNS_TIMEOUT = 1.5  # no network must end in under 2 s
ATTEMPT_CAP = 20.0  # one attempt's longest wait, so progress shows while waking
RETRY_DELAY = 2.0
WAKING_STATUSES = {502, 503, 504}
LIVE_SWITCH = "WSLAB_LIVE"  # "0" turns off live_attempt (make test does)

# One entry of socket.getaddrinfo: (family, type, proto, canonname, sockaddr).
Address = tuple[socket.AddressFamily, socket.SocketKind, int, str, Any]
Tapped = TappedSocket | TappedSSLSocket


@dataclass(frozen=True)
class Target:
    """Where to connect, read from a ws:// or wss:// URL."""

    url: str
    host: str
    port: int
    tls: bool

    @classmethod
    def parse(cls, url: str) -> Target:
        """Raises ``InvalidURL`` (pt-BR) unless ``url`` is ws:// or wss:// with a host."""
        problem = f"URL inválida: {url!r}; use ws://host[:porta]/ ou wss://host[:porta]/"
        parts = urlsplit(url)
        if parts.scheme not in ("ws", "wss") or not parts.hostname:
            raise InvalidURL(problem)
        try:
            port = parts.port
        except ValueError:
            raise InvalidURL(f"{problem} (a porta deve ser um número de 0 a 65535)") from None
        tls = parts.scheme == "wss"
        return cls(url, parts.hostname, port or (443 if tls else 80), tls)


@dataclass(frozen=True)
class FirstMessage:
    """The first text message, when it arrived, and the raw bytes after the response head."""

    text: str
    received_at: str  # UTC, ISO 8601
    after_handshake: bytes


class AttemptFailed(WslabError):
    """One attempt failed in a named way; ``exchange`` keeps what the handshake showed."""

    def __init__(self, failure: Failure, **details: object) -> None:
        super().__init__(failure.explain(**details))
        self.failure = failure
        self.details = details
        self.exchange: Exchange | None = None


class Stopwatch:
    """Seconds per phase, in the order phases first ran (a retried phase keeps its place)."""

    def __init__(self) -> None:
        self.phases: dict[str, float] = {}

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        """Time the ``with`` body as phase ``name``, whether it succeeds or fails."""
        started = time.perf_counter()
        try:
            yield
        finally:
            self.phases[name] = time.perf_counter() - started


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
        InvalidURL: if ``url`` is not a ws:// or wss:// URL with a host.
    """
    target = Target.parse(url)
    progress = on_progress or (lambda text: None)
    clock = Stopwatch()
    start = time.perf_counter()
    deadline = start + timeout
    attempts = 0
    exchange = Exchange()
    message: FirstMessage | None = None
    failed: AttemptFailed | None = None
    try:
        addresses = _resolve(target, min(DNS_TIMEOUT, timeout), clock)
        progress(
            f"{target.host} resolvido; conectando (até {timeout:g} s, o servidor pode estar acordando)"
        )
        while message is None:
            attempts += 1
            try:
                exchange, message = _attempt(
                    target,
                    addresses,
                    deadline=deadline,
                    read_timeout=read_timeout,
                    cafile=cafile,
                    clock=clock,
                )
            except AttemptFailed as error:
                exchange = error.exchange or exchange
                if not _worth_retrying(error, deadline):
                    raise
                waited = time.perf_counter() - start
                progress(
                    f"tentativa {attempts}: {error} Aguardando o servidor acordar "
                    f"({waited:.0f} s de {timeout:g} s)"
                )
                time.sleep(max(0.0, min(RETRY_DELAY, deadline - time.perf_counter())))
    except AttemptFailed as error:
        failed = error
    return FetchResult(
        url=url,
        source=source,
        message=message.text if message else None,
        failure=failed.failure if failed else None,
        explanation=str(failed) if failed else None,
        phases=clock.phases,
        status=exchange.status,
        response_headers=exchange.response_headers,
        request_head=exchange.request_head,
        response_head=exchange.response_head,
        after_handshake=message.after_handshake if message else b"",
        attempts=attempts,
        elapsed=time.perf_counter() - start,
        received_at=message.received_at if message else None,
    )


def live_attempt(url: str = DEFAULT_URL, **options: Any) -> FetchResult:
    """fetch_message(url), unless the environment turns live attempts off.

    ``make test`` sets WSLAB_LIVE=0 so that re-running the notebooks never reaches
    for the internet nor records a capture; the result then says so, by name.
    """
    if os.environ.get(LIVE_SWITCH) == "0":
        return FetchResult(
            url=url,
            source="live",
            failure=Failure.NOT_TRIED,
            explanation=Failure.NOT_TRIED.explain(variable=LIVE_SWITCH),
        )
    return fetch_message(url, **options)


def fetch_or_replica(
    url: str = DEFAULT_URL,
    *,
    use_replica: bool = True,
    **options: Any,
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


# -- the phases of one attempt ----------------------------------------------------------


def _worth_retrying(failed: AttemptFailed, deadline: float) -> bool:
    """A waking host times out or answers 502/503/504; retry while time remains."""
    waking = failed.failure in (Failure.CONNECT_TIMEOUT, Failure.HANDSHAKE_TIMEOUT) or (
        failed.failure is Failure.HTTP_STATUS and failed.details.get("status") in WAKING_STATUSES
    )
    return waking and deadline - time.perf_counter() > RETRY_DELAY


def _resolve(target: Target, limit: float, clock: Stopwatch) -> list[Address]:
    """getaddrinfo in a daemon thread, so a stuck resolver cannot hold us past ``limit``."""
    answers: list[list[Address] | Exception] = []
    with clock.phase("dns"):
        worker = threading.Thread(target=_lookup, args=(target, answers), daemon=True)
        worker.start()
        worker.join(limit)
    if not answers or isinstance(answers[0], Exception):
        raise AttemptFailed(Failure.DNS, host=target.host)
    return answers[0]


def _lookup(target: Target, answers: list[list[Address] | Exception]) -> None:
    try:
        found: list[Address] = list(
            socket.getaddrinfo(target.host, target.port, type=socket.SOCK_STREAM)
        )
        answers.append(found)
    except (OSError, UnicodeError) as error:
        answers.append(error)


def _attempt(
    target: Target,
    addresses: list[Address],
    *,
    deadline: float,
    read_timeout: float,
    cafile: str | None,
    clock: Stopwatch,
) -> tuple[Exchange, FirstMessage]:
    """One connection from TCP to the first message; raises AttemptFailed naming the phase."""
    attempt_deadline = min(deadline, time.perf_counter() + ATTEMPT_CAP)
    tcp = _connect(target, addresses, attempt_deadline, clock)
    sock: Tapped = tcp
    try:
        if target.tls:
            sock = _start_tls(tcp, target.host, cafile, attempt_deadline, clock)
        ws, exchange = _handshake(target.url, sock, attempt_deadline, clock)
        try:
            wait = min(read_timeout, _left(attempt_deadline))
            return exchange, _read_first_message(ws, sock, wait, clock)
        except AttemptFailed as failed:
            failed.exchange = exchange
            raise
        finally:
            sock.deadline = None
            # the peer may be gone or broken; the socket is closed below anyway
            with contextlib.suppress(websocket.WebSocketException, OSError):
                ws.close(timeout=min(1.0, max(0.05, deadline - time.perf_counter())))
    finally:
        sock.close()


def _connect(
    target: Target, addresses: list[Address], deadline: float, clock: Stopwatch
) -> TappedSocket:
    """TCP to the first address that accepts, in resolver order (IPv6 may come first)."""
    host, port = target.host, target.port
    failure = AttemptFailed(Failure.DNS, host=host)  # no address at all
    with clock.phase("tcp"):
        for family, kind, proto, _, sockaddr in addresses:
            sock = TappedSocket(family, kind, proto)
            wait = _left(deadline)
            sock.settimeout(wait)
            try:
                sock.connect(sockaddr)
            except ConnectionRefusedError:
                failure = AttemptFailed(Failure.REFUSED, host=host, port=port)
            except TimeoutError:
                failure = AttemptFailed(Failure.CONNECT_TIMEOUT, host=host, port=port, waited=wait)
            except OSError as error:
                failure = AttemptFailed(
                    Failure.UNREACHABLE, host=host, port=port, reason=error.strerror or error
                )
            else:
                sock.deadline = deadline
                return sock
            sock.close()
            if time.perf_counter() >= deadline:
                break
    raise failure


def _start_tls(
    sock: TappedSocket, host: str, cafile: str | None, deadline: float, clock: Stopwatch
) -> TappedSSLSocket:
    with clock.phase("tls"):
        sock.settimeout(_left(deadline))
        try:
            # The context's sslsocket_class is TappedSSLSocket (tapped_tls_context).
            tls_sock = cast(
                TappedSSLSocket,
                tapped_tls_context(cafile).wrap_socket(sock, server_hostname=host),
            )
        except (ssl.SSLError, ssl.CertificateError) as error:
            raise AttemptFailed(Failure.TLS, host=host, reason=_tls_reason(error)) from None
        except OSError as error:
            reason = error.strerror or type(error).__name__
            raise AttemptFailed(Failure.TLS, host=host, reason=reason) from None
    tls_sock.deadline = deadline
    return tls_sock


def _handshake(
    url: str, sock: Tapped, deadline: float, clock: Stopwatch
) -> tuple[websocket.WebSocket, Exchange]:
    """The upgrade, done by websocket-client over the tapped socket; the exchange it left."""
    wait = _left(deadline)
    try:
        with clock.phase("handshake"):
            ws = websocket.create_connection(
                url, socket=sock, timeout=wait, enable_multithread=False
            )
    except websocket.WebSocketBadStatusException as error:
        failed = AttemptFailed(Failure.HTTP_STATUS, status=error.status_code)
        failed.exchange = _exchange(sock, error.status_code, error.resp_headers)
        raise failed from None
    except websocket.WebSocketTimeoutException:
        raise AttemptFailed(Failure.HANDSHAKE_TIMEOUT, waited=wait) from None
    except (websocket.WebSocketConnectionClosedException, OSError):
        raise AttemptFailed(Failure.DROPPED) from None
    except websocket.WebSocketException:
        exchange = _exchange(sock, None, None)
        failed = AttemptFailed(_diagnose_bad_upgrade(exchange))
        failed.exchange = exchange
        raise failed from None
    return ws, _exchange(sock, ws.getstatus(), ws.getheaders())


def _read_first_message(
    ws: websocket.WebSocket, sock: Tapped, wait: float, clock: Stopwatch
) -> FirstMessage:
    """Skip control and binary frames; the first text frame is the answer."""
    ws.settimeout(wait)
    try:
        with clock.phase("first_message"):
            while True:
                opcode, frame = ws.recv_data_frame(control_frame=True)
                if opcode == websocket.ABNF.OPCODE_TEXT:
                    break
                if opcode == websocket.ABNF.OPCODE_CLOSE:
                    raise AttemptFailed(Failure.CLOSED_EARLY, code=_close_code(frame.data))
    except websocket.WebSocketTimeoutException:
        raise AttemptFailed(Failure.NO_MESSAGE, waited=wait) from None
    except (websocket.WebSocketConnectionClosedException, OSError):
        raise AttemptFailed(Failure.DROPPED) from None
    except websocket.WebSocketException as error:  # bad frame: RSV bits, opcode, UTF-8...
        raise AttemptFailed(Failure.PROTOCOL, reason=error) from None
    return FirstMessage(
        text=frame.data.decode("utf-8"),  # websocket-client validated it
        received_at=datetime.now(UTC).isoformat(timespec="seconds"),
        after_handshake=sock.received.partition(b"\r\n\r\n")[2],
    )


def _close_code(payload: bytes) -> int | str:
    try:
        return Close.parse(payload).code
    except ProtocolError:
        return "inválido"


def _exchange(sock: Tapped, status: int | None, headers: dict[str, str] | None) -> Exchange:
    return Exchange(_head(sock.sent), _head(sock.received), status, dict(headers or {}))


def _head(data: bytes) -> str:
    return data.split(b"\r\n\r\n", 1)[0].decode("latin-1")


def _diagnose_bad_upgrade(exchange: Exchange) -> Failure:
    """websocket-client says only 'Invalid WebSocket Header': find out whether the accept was wrong."""
    try:
        request = parse_request(exchange.request_head.encode("latin-1") + b"\r\n\r\n")
        response = parse_response(exchange.response_head.encode("latin-1") + b"\r\n\r\n")
        if not isinstance(request, NeedData) and not isinstance(response, NeedData):
            check_response(response[0], request[0].get("Sec-WebSocket-Key") or "")
    except HandshakeError as error:
        if error.rule is HandshakeRule.BAD_ACCEPT:
            return Failure.BAD_ACCEPT
    return Failure.BAD_UPGRADE


def _tls_reason(error: Exception) -> str:
    return (
        getattr(error, "verify_message", None)
        or getattr(error, "reason", None)
        or type(error).__name__
    )


def _left(deadline: float) -> float:
    """Seconds left before ``deadline``; never zero, which sockets read as "no timeout"."""
    return max(0.05, deadline - time.perf_counter())
