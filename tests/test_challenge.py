"""wslab.challenge.client against local servers only: the success path and every named failure."""

import socket
import subprocess
import sys
import threading
import time

import pytest

from wslab.challenge import cli, client
from wslab.challenge.badservers import BadServer
from wslab.challenge.client import fetch_message, fetch_or_replica
from wslab.challenge.provenance import RECORDED_MESSAGE
from wslab.challenge.replica import Replica
from wslab.challenge.result import CAPTURE_FIELDS, Failure, InvalidURL, load_capture, save_capture
from wslab.protocol.handshake import accept_key


def _no_dns(monkeypatch):
    def fail(*args, **kwargs):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(client.socket, "getaddrinfo", fail)


def test_reads_the_first_message_over_ws():
    with Replica() as replica:
        result = fetch_message(replica.url, timeout=5)
    assert result.ok and result.failure is None
    assert result.message == RECORDED_MESSAGE
    assert result.source == "live" and result.status == 101
    assert list(result.phases) == ["dns", "tcp", "handshake", "first_message"]
    assert result.after_handshake.startswith(b"\x81\x15")


def test_records_the_handshake_actually_exchanged():
    with Replica() as replica:
        result = fetch_message(replica.url, timeout=5)
    request = result.request_head.split("\r\n")
    assert request[0] == "GET / HTTP/1.1"
    key = next(line.split(": ", 1)[1] for line in request if line.startswith("Sec-WebSocket-Key"))
    assert result.response_head.startswith("HTTP/1.1 101 ")
    assert result.response_headers["sec-websocket-accept"] == accept_key(key)


def test_reads_the_first_message_over_wss():
    with Replica(tls=True) as replica:
        url = replica.url.replace("127.0.0.1", "localhost")
        result = fetch_message(url, timeout=5, cafile=replica.ca_file)
    assert result.message == RECORDED_MESSAGE
    assert list(result.phases) == ["dns", "tcp", "tls", "handshake", "first_message"]
    assert "Sec-WebSocket-Key" in result.request_head  # taped above TLS, in plain text


@pytest.mark.parametrize(
    "mode, failure",
    [
        ("refuse", Failure.REFUSED),
        ("blackhole", Failure.CONNECT_TIMEOUT),
        ("stall", Failure.HANDSHAKE_TIMEOUT),
        ("http-404", Failure.HTTP_STATUS),
        ("http-502", Failure.HTTP_STATUS),
        ("wrong-accept", Failure.BAD_ACCEPT),
        ("close-early", Failure.CLOSED_EARLY),
        ("drop", Failure.DROPPED),
        ("silent", Failure.NO_MESSAGE),
    ],
)
def test_each_failure_is_named_and_bounded(mode, failure):
    started = time.monotonic()
    with BadServer(mode) as server:
        result = fetch_message(server.url, timeout=1.0, read_timeout=0.5)
    assert result.failure is failure
    assert not result.ok and result.message is None
    assert result.explanation and "{" not in result.explanation
    assert time.monotonic() - started < 4.0  # 1 s budget + a bounded clean close


def test_http_status_is_kept():
    with BadServer("http-404") as server:
        result = fetch_message(server.url, timeout=1.0)
    assert result.status == 404 and "404" in result.explanation
    assert result.response_head.startswith("HTTP/1.1 404")


def test_closed_early_names_the_close_code():
    with BadServer("close-early") as server:
        result = fetch_message(server.url, timeout=1.0)
    assert "1000" in result.explanation


def test_untrusted_certificate_is_a_tls_failure():
    with Replica(tls=True) as replica:
        result = fetch_message(replica.url, timeout=2)
    assert result.failure is Failure.TLS
    assert "certificate" in result.explanation


def test_unresolvable_name_gives_up_at_once(monkeypatch):
    _no_dns(monkeypatch)
    result = fetch_message("wss://websocket-fh6l.onrender.com", timeout=60)
    assert result.failure is Failure.DNS
    assert result.attempts == 0 and result.elapsed < 2.0


def test_a_stuck_resolver_is_bounded(monkeypatch):
    release = threading.Event()

    def stuck(*args, **kwargs):
        release.wait(10)
        raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")

    monkeypatch.setattr(client.socket, "getaddrinfo", stuck)
    started = time.monotonic()
    try:
        result = fetch_message("wss://websocket-fh6l.onrender.com", timeout=60)
    finally:
        release.set()
    assert result.failure is Failure.DNS
    assert time.monotonic() - started < 2.0


def test_a_waking_host_is_retried_until_the_timeout_with_progress():
    progress = []
    with BadServer("http-502") as server:
        result = fetch_message(server.url, timeout=4.5, on_progress=progress.append)
    assert result.failure is Failure.HTTP_STATUS and result.attempts >= 2
    assert sum("Aguardando o servidor acordar" in line for line in progress) == result.attempts - 1
    assert result.elapsed < 6.0


def test_a_definite_answer_is_not_retried():
    with BadServer("http-404") as server:
        result = fetch_message(server.url, timeout=10)
    assert result.attempts == 1 and result.elapsed < 2.0


@pytest.mark.parametrize("url", ["http://example.com/", "websocket-fh6l.onrender.com", "ws://"])
def test_a_url_that_is_not_websocket_is_refused(url):
    with pytest.raises(InvalidURL, match="URL inválida"):
        fetch_message(url)


def test_falls_back_to_the_replica_and_marks_it(monkeypatch):
    with BadServer("refuse") as server:
        live, local = fetch_or_replica(server.url, timeout=1.0)
    assert live.failure is Failure.REFUSED
    assert local is not None and local.source == "replica"
    assert local.message == RECORDED_MESSAGE


def test_no_fallback_when_asked_not_to():
    with BadServer("refuse") as server:
        live, local = fetch_or_replica(server.url, use_replica=False, timeout=1.0)
    assert local is None and not live.ok


def test_capture_round_trip(tmp_path):
    with Replica() as replica:
        result = fetch_message(replica.url, timeout=5)
    path = tmp_path / "live_capture.json"
    save_capture(result, path)
    capture = load_capture(path)
    assert capture["message"] == RECORDED_MESSAGE and capture["status"] == 101
    assert set(capture) == set(CAPTURE_FIELDS)


def test_a_replica_result_is_never_saved_as_a_live_capture(tmp_path):
    with Replica() as replica:
        result = fetch_message(replica.url, timeout=5, source="replica")
    with pytest.raises(ValueError):
        save_capture(result, tmp_path / "live_capture.json")
    assert load_capture(tmp_path / "live_capture.json") is None


def test_cli_no_replica_exits_nonzero_with_the_named_failure():
    with BadServer("refuse") as server:
        done = subprocess.run(
            [sys.executable, "-m", "wslab.challenge", server.url, "--no-replica", "--timeout", "2"],
            capture_output=True,
            text=True,
            timeout=30,
        )
    assert done.returncode == 1
    assert "REFUSED" in done.stdout and "recusada" in done.stdout
    assert "Traceback" not in done.stdout + done.stderr


def test_cli_falls_back_to_the_replica_and_says_so(capsys):
    with BadServer("http-404") as server:
        code = cli.main([server.url, "--timeout", "2"])
    out = capsys.readouterr().out
    assert code == 0
    assert "RÉPLICA LOCAL" in out and RECORDED_MESSAGE in out and "HTTP_STATUS" in out


def test_cli_prints_a_live_message(capsys):
    with Replica() as replica:
        code = cli.main([replica.url, "--no-replica", "--timeout", "5"])
    out = capsys.readouterr().out
    assert code == 0 and "servidor ao vivo" in out and RECORDED_MESSAGE in out


def test_cli_rejects_a_bad_url_without_traceback(capsys):
    assert cli.main(["http://example.com/"]) == 2
    assert "URL inválida" in capsys.readouterr().out


def test_a_frame_that_breaks_the_protocol_is_named():
    with BadServer("bad-frame") as server:
        result = fetch_message(server.url, timeout=2.0)
    assert result.failure is Failure.PROTOCOL
    assert "frame inválido" in result.explanation


def test_a_dripping_server_cannot_outlive_the_timeout():
    """websocket-client reads the 101 byte by byte: a per-read timeout alone never fires."""
    started = time.monotonic()
    with BadServer("drip") as server:
        result = fetch_message(server.url, timeout=1.0)
    assert result.failure is Failure.HANDSHAKE_TIMEOUT
    assert time.monotonic() - started < 3.0


def test_when_one_address_fails_the_next_is_tried(monkeypatch):
    """Resolvers often list IPv6 first; a machine without an IPv6 route must go on to IPv4."""
    with Replica() as replica:
        nobody_there = (socket.AF_INET6, socket.SOCK_STREAM, 6, "", ("::1", replica.port, 0, 0))
        replica_address = socket.getaddrinfo("127.0.0.1", replica.port, type=socket.SOCK_STREAM)[0]
        monkeypatch.setattr(
            client.socket, "getaddrinfo", lambda *a, **k: [nobody_there, replica_address]
        )
        result = fetch_message(replica.url, timeout=3)
    assert result.message == RECORDED_MESSAGE


def test_when_no_address_answers_the_last_failure_is_named(monkeypatch):
    def no_route(*args, **kwargs):
        raise OSError(101, "Network is unreachable")

    monkeypatch.setattr(client.TappedSocket, "connect", no_route)
    result = fetch_message("ws://127.0.0.1:9/", timeout=2)
    assert result.failure is Failure.UNREACHABLE
    assert "Network is unreachable" in result.explanation


def test_a_bad_port_is_a_clear_error():
    with pytest.raises(InvalidURL, match="porta deve ser um número"):
        fetch_message("ws://127.0.0.1:99999/")


def test_live_attempt_can_be_switched_off(monkeypatch):
    monkeypatch.setenv("WSLAB_LIVE", "0")
    monkeypatch.setattr(client, "fetch_message", lambda *a, **k: pytest.fail("went online"))
    result = client.live_attempt()
    assert result.failure is Failure.NOT_TRIED and "WSLAB_LIVE=0" in result.explanation
    assert result.source == "live" and not result.ok


def test_live_attempt_goes_live_by_default(monkeypatch):
    monkeypatch.delenv("WSLAB_LIVE", raising=False)
    with Replica() as replica:
        result = client.live_attempt(replica.url, timeout=5)
    assert result.message == RECORDED_MESSAGE
