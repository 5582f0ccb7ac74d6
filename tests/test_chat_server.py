"""The chat server over real sockets: translation, every bad input, drops and resumes.

Clients are websockets' sync clients (they send no Origin header, like scripts do);
every receive is bounded, so a missing frame fails the test instead of hanging it.
"""

import contextlib
import json
import select
import signal
import socket
import subprocess
import sys
import time

import pytest
from chatclient import WAIT, chat_server, closed_with, hello, nothing_more, receive, say
from websockets.exceptions import InvalidStatus

import wslab.chat.net.service as service_module
from wslab.protocol.handshake import build_request, generate_key


@pytest.fixture
def server():
    with chat_server() as running:
        yield running


def test_public_message_reaches_every_session_once(server, join):
    ana, welcome = join(server, "Ana")
    joao, _ = join(server, "joao")
    assert welcome["user"] == "ana" and welcome["epoch"] == server.epoch
    assert welcome["recovered"] is False
    say(ana, "bom dia")
    expected = {
        "type": "message",
        "offset": 1,
        "kind": "public",
        "from": "ana",
        "to": None,
        "text": "bom dia",
        "replayed": False,
    }
    assert receive(ana) == expected and receive(joao) == expected
    assert nothing_more(ana) and nothing_more(joao)


def test_private_message_reaches_every_device_of_both_users_only(server, join):
    ana_phone, _ = join(server, "ana")
    ana_laptop, _ = join(server, "ana")
    joao, _ = join(server, "joao")
    bia, _ = join(server, "bia")
    say(joao, "/msg ana oi")
    for ws in (ana_phone, ana_laptop, joao):
        frame = receive(ws)
        assert (frame["kind"], frame["from"], frame["to"], frame["text"]) == (
            "private",
            "joao",
            "ana",
            "oi",
        )
    assert nothing_more(bia)


def test_who_and_command_errors_answer_only_the_asking_session(server, join):
    ana, _ = join(server, "ana")
    joao, _ = join(server, "joao")
    say(ana, "/who")
    assert receive(ana) == {"type": "system", "text": "Online agora: ana, joao."}
    say(ana, "/msg ninguem oi")
    error = receive(ana)
    assert error["type"] == "error" and "ninguem" in error["text"]
    assert nothing_more(joao)


def test_a_public_message_is_serialized_once_for_all_recipients(server, monkeypatch, join):
    calls = []
    real = service_module.encode_item

    def counting(delivery, **options):
        calls.append(delivery.offset)
        return real(delivery, **options)

    monkeypatch.setattr(service_module, "encode_item", counting)
    clients = [join(server, f"u{i}")[0] for i in range(5)]
    say(clients[0], "para todos")
    assert all(receive(ws)["text"] == "para todos" for ws in clients)
    assert calls == [1]


def test_wrong_secret_closes_with_4001_and_disturbs_no_one(server, join, opened):
    ana, _ = join(server, "ana", "certo")
    intruder = opened(server.ws_url)
    intruder.send(json.dumps({"type": "hello", "user": "ana", "secret": "errado"}))
    code, reason = closed_with(intruder)
    assert code == 4001 and "Senha errada" in reason
    say(ana, "ainda aqui")
    assert receive(ana)["text"] == "ainda aqui"
    assert server.session_ids() == ["s1"]


@pytest.mark.parametrize(
    "first",
    [
        "isto não é JSON",
        b"\x00\x01binary",
        '{"type": "say", "text": "oi"}',
        '{"type": "hello", "user": "ana"}',
        '{"type": "hello", "user": "nome com espaço", "secret": "s"}',
        '{"type": "hello", "user": "ana", "secret": ""}',
    ],
)
def test_a_first_frame_that_is_not_a_valid_hello_closes_with_4000(server, first, opened):
    ws = opened(server.ws_url)
    ws.send(first)
    code, reason = closed_with(ws)
    assert code == 4000 and reason
    assert server.session_ids() == []


def test_resume_beyond_the_newest_offset_is_unrecoverable_and_says_so(server, join):
    """A store restored from an older copy: never a clean recovery."""
    _, welcome = join(server, "ana", resume={"epoch": server.epoch, "offset": 99})
    assert welcome["recovered"] is False


def test_a_silent_client_is_closed_with_4000_after_the_hello_timeout(opened):
    with chat_server(hello_timeout=0.3) as server:
        ws = opened(server.ws_url)
        code, reason = closed_with(ws)
        assert code == 4000 and "hello" in reason


@pytest.mark.parametrize(
    "frame, words",
    [
        ("{malformed", "JSON inválido"),
        ('{"type": "dance"}', "desconhecido"),
        (b"\x89binary", "binário"),
        ('{"type": "say", "text": null}', "text"),
    ],
)
def test_bad_frames_after_hello_get_an_error_and_the_connection_stays(server, frame, words, join):
    ana, _ = join(server, "ana")
    ana.send(frame)
    error = receive(ana)
    assert error["type"] == "error" and words in error["text"]
    say(ana, "continuo conectada")
    assert receive(ana)["text"] == "continuo conectada"


def test_a_frame_over_16_kib_closes_with_1009_and_others_carry_on(server, join):
    ana, _ = join(server, "ana")
    joao, _ = join(server, "joao")
    say(ana, "x" * (16 * 1024))
    code, _ = closed_with(ana)
    assert code == 1009
    say(joao, "sigo aqui")
    assert receive(joao)["text"] == "sigo aqui"


def _with_origin(origin):
    return {"additional_headers": [("Origin", origin)] if origin else []}


def test_a_foreign_origin_is_refused_with_403(server, opened):
    with pytest.raises(InvalidStatus) as caught:
        opened(server.ws_url, **_with_origin("http://evil.example"))
    assert caught.value.response.status_code == 403


def _handshake_status(server, host):
    """The status line of a /ws upgrade sent with this Host (and the same Origin)."""
    request = build_request(server.ws_url, generate_key()).decode()
    request = request.replace(f"Host: 127.0.0.1:{server.port}", f"Host: {host}", 1)
    request = request.replace("\r\n\r\n", f"\r\nOrigin: http://{host}\r\n\r\n", 1)
    assert f"Host: {host}\r\n" in request and f"Origin: http://{host}" in request
    with socket.create_connection(("127.0.0.1", server.port), timeout=WAIT) as raw:
        raw.sendall(request.encode())
        return _read_head(raw).split(b"\r\n", 1)[0]


def test_a_host_that_does_not_name_this_server_is_refused_with_403():
    """DNS rebinding: a hostile name resolved to this machine arrives as Host."""
    with chat_server(allowed_hosts=["chat.example"]) as server:
        assert _handshake_status(server, f"attacker.example:{server.port}").startswith(
            b"HTTP/1.1 403"
        )
        for host in (f"chat.example:{server.port}", f"localhost:{server.port}"):
            assert _handshake_status(server, host).startswith(b"HTTP/1.1 101")


def test_the_servers_own_origin_and_no_origin_are_allowed(server, opened):
    own = server.url.rstrip("/")
    for origin in (own, None):
        ws = opened(server.ws_url, **_with_origin(origin))
        assert hello(ws, "ana")["user"] == "ana"


def _get(server, path, host=None):
    """The response head of a plain HTTP GET (Host: the server's address and port)."""
    host = host or f"127.0.0.1:{server.port}"
    with socket.create_connection(("127.0.0.1", server.port), timeout=WAIT) as raw:
        raw.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
        return _read_head(raw)


def test_the_browser_client_is_served_with_a_strict_policy(server):
    for _ in range(3):  # the same headers every time: none piles up across requests
        head = _get(server, "/")
        assert head.startswith(b"HTTP/1.1 200")
        assert b"text/html" in head and b"default-src 'self'" in head
        assert head.lower().count(b"\r\nserver:") == 1
    assert _get(server, "/app.js").startswith(b"HTTP/1.1 200")
    assert _get(server, "/nada.txt").startswith(b"HTTP/1.1 404")
    assert b"frame-ancestors 'none'" in head and b"X-Frame-Options: DENY" in head


@pytest.mark.parametrize("host", ["chat.evil.example", "127.0.0.1:1", "localhost:80"])
def test_the_page_reached_by_an_unknown_name_or_port_says_why(server, host):
    with socket.create_connection(("127.0.0.1", server.port), timeout=WAIT) as raw:
        raw.sendall(f"GET / HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
        raw.settimeout(WAIT)
        response = b""
        while b"</html>" not in response:
            chunk = raw.recv(4096)
            if not chunk:
                break
            response += chunk
    assert response.startswith(b"HTTP/1.1 403")
    assert "Host não reconhecido".encode() in response


def _read_head(raw):
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = raw.recv(4096)
        if not chunk:
            break
        data += chunk
    return data


def test_a_dropped_session_resumes_with_what_it_missed_each_once(server, join):
    ana_phone, first = join(server, "ana")
    ana_laptop, _ = join(server, "ana")
    joao, _ = join(server, "joao")
    say(joao, "antes")
    last_seen = receive(ana_phone)["offset"]
    receive(ana_laptop), receive(joao)
    server.drop(first["session"])
    say(joao, "durante 1")
    say(joao, "/msg ana durante 2")
    assert [receive(ana_laptop)["text"] for _ in range(2)] == ["durante 1", "durante 2"]
    ana_phone, welcome = join(server, "ana", resume={"epoch": first["epoch"], "offset": last_seen})
    assert welcome["recovered"] is True and welcome["session"] != first["session"]
    replay = [receive(ana_phone) for _ in range(2)]
    assert [(f["offset"], f["text"], f["replayed"]) for f in replay] == [
        (last_seen + 1, "durante 1", True),
        (last_seen + 2, "durante 2", True),
    ]
    say(joao, "depois")
    assert receive(ana_phone) | {"replayed": None} == receive(ana_laptop) | {"replayed": None}
    assert nothing_more(ana_phone)


def test_a_session_over_the_rate_limit_is_told_and_its_extra_line_not_sent(opened):
    with chat_server(max_rate=1.0, burst=3) as server:
        ana = opened(server.ws_url)
        joao = opened(server.ws_url)
        hello(ana, "ana"), hello(joao, "joao")
        for i in range(4):
            say(ana, f"linha {i}")
        frames = [receive(ana) for _ in range(4)]
        assert [f.get("text") for f in frames[:3]] == ["linha 0", "linha 1", "linha 2"]
        assert frames[3]["type"] == "error" and "Devagar" in frames[3]["text"]
        assert [receive(joao)["text"] for _ in range(3)] == ["linha 0", "linha 1", "linha 2"]
        assert nothing_more(joao)


def test_a_client_flooding_bad_frames_without_reading_costs_bounded_output(join):
    """Each bad frame costs a line of the rate and earns an error frame; the flooder's
    socket is read no faster than its budget, and its unread output never passes
    the unread limit (past it, it is shed)."""
    with chat_server(max_pending=64 * 1024) as server:
        flooder = _raw_session(server, "ruidosa", rcvbuf=4096)
        ana, _ = join(server, "ana")
        junk = bytes([0x81, 0x80 | 1]) + b"\x00\x00\x00\x00" + b"x"  # masked text "x"
        flooder.settimeout(0.2)
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline:
            with contextlib.suppress(TimeoutError):  # the server stopped reading it
                flooder.sendall(junk * 500)
        unread = server._call(_unread(server, "s1"), WAIT)
        assert unread is None or unread <= 64 * 1024 + 16 * 1024, unread  # shed, or under
        say(ana, "tudo bem")
        assert receive(ana)["text"] == "tudo bem"
        flooder.close()


async def _unread(server, session_id):
    """Bytes the session left unread, or None once it was shed."""
    if session_id not in server.service.session_ids():
        return None
    return server.service.connection(session_id).transport.get_write_buffer_size()


def test_a_client_that_stops_answering_pings_is_closed():
    with chat_server(ping_interval=0.1, ping_timeout=0.2, close_timeout=0.2) as server:
        raw = _raw_session(server, "mudo")
        assert server.session_ids() == ["s1"]
        deadline = time.monotonic() + WAIT
        while server.session_ids() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert server.session_ids() == []
        raw.close()


def _raw_session(server, user, rcvbuf=None):
    """A socket that completes the handshake and the hello, then never reads."""
    raw = socket.socket()
    if rcvbuf:
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    raw.settimeout(WAIT)
    raw.connect(("127.0.0.1", server.port))
    raw.sendall(build_request(server.ws_url, generate_key()))
    assert _read_head(raw).startswith(b"HTTP/1.1 101")
    payload = json.dumps({"type": "hello", "user": user, "secret": "s"}).encode()
    mask = b"\x00\x00\x00\x00"  # a zero mask leaves the payload as is
    raw.sendall(bytes([0x81, 0x80 | len(payload)]) + mask + payload)
    deadline = time.monotonic() + WAIT
    while not server.session_ids() and time.monotonic() < deadline:
        time.sleep(0.01)
    return raw


def test_a_client_too_slow_to_read_is_shed_and_the_others_get_everything(join):
    with chat_server(max_pending=64 * 1024, max_rate=None) as server:
        slow = _raw_session(server, "lenta", rcvbuf=4096)
        ana, _ = join(server, "ana")
        text = "y" * 2000
        sent = 0
        while "s1" in server.session_ids() and sent < 5000:
            say(ana, text)
            assert receive(ana)["offset"] == sent + 1
            sent += 1
        assert server.session_ids() == ["s2"], f"ainda aberta após {sent} mensagens"
        say(ana, "depois")
        assert receive(ana)["text"] == "depois"
        slow.close()


def test_a_client_that_sends_too_big_a_frame_and_goes_silent_is_cut():
    """After 1009 the peer neither reads nor closes: the session still ends, bounded."""
    with chat_server(close_timeout=0.3) as server:
        raw = _raw_session(server, "ana")
        size = 16 * 1024 + 1
        raw.sendall(bytes([0x81, 0x80 | 127]) + size.to_bytes(8, "big") + bytes(4 + size))
        deadline = time.monotonic() + WAIT
        while server.session_ids() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert server.session_ids() == []
        raw.close()


def test_stop_is_bounded_even_with_a_client_that_reads_nothing(join):
    # No shedding (max_pending of 1 GiB): the stuck client is still there at stop().
    with chat_server(close_timeout=0.3, max_pending=1 << 30, max_rate=None) as server:
        stuck = _raw_session(server, "parada", rcvbuf=4096)
        ana, _ = join(server, "ana")
        for offset in range(1, 1501):  # megabytes queued towards the stuck client
            say(ana, "z" * 2000)
            assert receive(ana)["offset"] == offset
        assert "s1" in server.session_ids()
        server.stop(timeout=WAIT)  # raises TimeoutError if the close were unbounded
        stuck.close()


def test_ctrl_c_closes_every_connection_with_1001_and_exits_0(opened):
    process = subprocess.Popen(
        [sys.executable, "-m", "wslab.chat", "serve", "--port", "0", "--db", ":memory:"],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        ready, _, _ = select.select([process.stderr], [], [], WAIT)
        assert ready, "o servidor não disse onde está servindo"
        line = process.stderr.readline()
        assert "servindo o chat em http://127.0.0.1:" in line, line
        port = int(line.split("127.0.0.1:")[1].split("/")[0])
        ws = opened(f"ws://127.0.0.1:{port}/ws")
        hello(ws, "ana")
        process.send_signal(signal.SIGINT)
        code, _ = closed_with(ws)
        assert code == 1001
        assert process.wait(timeout=WAIT) == 0
        log = process.stderr.read()
        assert "aberta s1 ana" in log and "fechada s1" in log
    finally:
        process.kill()
        process.wait(timeout=WAIT)
