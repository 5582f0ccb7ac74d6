"""Who may open /ws (Host and Origin) and the static files (wslab.chat.net.http): the
rules alone, then over a real server.

On a chat of several nodes, each node admits the other nodes' origins (``--node``) and
the ones the operator names (``--allow-origin``), and still refuses every other; the
page may connect to the peers (CSP).
"""

import socket

import pytest
from chatclient import WAIT, chat_server, hello
from websockets.datastructures import Headers
from websockets.exceptions import InvalidStatus

from benchmarks.chat_attacks import read_head
from wslab.chat.net.http import StaticFiles, handshake_refusal, host_name, parse_origin, socket_url
from wslab.protocol.handshake import build_request, generate_key


@pytest.mark.parametrize(
    "header, name",
    [
        ("127.0.0.1:8765", "127.0.0.1"),
        ("LocalHost:80", "localhost"),
        ("[::1]:8765", "::1"),
        ("chat.example", "chat.example"),
        ("[::1]", "::1"),
    ],
)
def test_host_name(header, name):
    assert host_name(header) == name


def _headers(**values):
    return Headers([(key.capitalize(), value) for key, value in values.items()])


@pytest.mark.parametrize(
    "host, origin",
    [
        ("127.0.0.1:8765", None),
        ("127.0.0.1:8765", "http://127.0.0.1:8765"),
        ("localhost:8765", "http://localhost:8765"),
        ("LOCALHOST:8765", "https://localhost:8765"),
        ("chat.example", "https://chat.example"),
    ],
)
def test_own_host_and_origin_are_accepted(host, origin):
    headers = _headers(host=host) if origin is None else _headers(host=host, origin=origin)
    assert handshake_refusal(headers, "127.0.0.1", allowed_hosts=["chat.example"]) is None


@pytest.mark.parametrize(
    "headers, words",
    [
        (_headers(host="evil.example:8765"), "Host não reconhecido"),  # DNS rebinding
        (
            _headers(host="evil.example:8765", origin="http://evil.example:8765"),
            "Host não reconhecido",
        ),
        (_headers(host="127.0.0.1:8765", origin="http://evil.example"), "Origem não permitida"),
        (_headers(host="127.0.0.1:8765", origin="http://127.0.0.1:9999"), "Origem não permitida"),
        (_headers(host="127.0.0.1:8765", origin="null"), "Origem não permitida"),
        (_headers(origin="http://127.0.0.1:8765"), "Host ausente"),
        (Headers([("Host", "127.0.0.1"), ("Host", "evil.example")]), "repetido"),
        (
            Headers(
                [
                    ("Host", "127.0.0.1"),
                    ("Origin", "http://127.0.0.1"),
                    ("Origin", "http://evil.example"),
                ]
            ),
            "repetido",
        ),
    ],
)
def test_foreign_hosts_and_origins_are_refused_with_a_reason(headers, words):
    assert words in handshake_refusal(headers, "127.0.0.1")


def test_the_address_the_client_connected_to_is_a_name_of_the_server():
    headers = _headers(host="192.168.0.7:8765", origin="http://192.168.0.7:8765")
    assert handshake_refusal(headers, "192.168.0.7") is None
    assert handshake_refusal(headers, "127.0.0.1") is not None


def test_static_files_get_a_fresh_response_each_time():
    files = StaticFiles()
    first, second = files.response("/"), files.response("/")
    assert first is not second and first.headers is not second.headers
    assert first.body == files.response("/index.html").body
    assert first.headers["Content-Type"].startswith("text/html")
    assert files.response("/nada.txt") is None


# -- several nodes: the peers' origins ---------------------------------------------------


PEERS = ["http://127.0.0.1:8766", "https://chat-b.example"]


def _host_and_origin(host, origin):
    return Headers([("Host", host), ("Origin", origin)])


@pytest.mark.parametrize(
    "text, origin",
    [
        ("http://127.0.0.1:8766/", "http://127.0.0.1:8766"),
        ("HTTPS://Chat.Example", "https://chat.example"),
        ("http://[::1]:9000", "http://[::1]:9000"),
    ],
)
def test_parse_origin(text, origin):
    assert parse_origin(text) == origin


@pytest.mark.parametrize(
    "text",
    [
        "127.0.0.1:8766",
        "ws://127.0.0.1:8766",
        "http://127.0.0.1:8766/ws",
        "http://",
        "http://a:b",
        "http://x?y=1",
        "http://user@host",
        "ftp://host",
        "",
    ],
)
def test_parse_origin_refuses_what_is_not_an_origin_with_a_sentence(text):
    with pytest.raises(ValueError, match="não é uma origem"):
        parse_origin(text)


def test_socket_url():
    assert socket_url("http://127.0.0.1:8766") == "ws://127.0.0.1:8766/ws"
    assert socket_url("https://chat-b.example/") == "wss://chat-b.example/ws"


@pytest.mark.parametrize(
    "origin",
    ["http://127.0.0.1:8765", "http://127.0.0.1:8766", "HTTPS://CHAT-B.EXAMPLE"],
)
def test_the_clusters_own_origins_are_admitted(origin):
    allowed = [parse_origin(peer) for peer in PEERS]
    headers = _host_and_origin("127.0.0.1:8765", origin)
    assert handshake_refusal(headers, "127.0.0.1", allowed_origins=allowed) is None


@pytest.mark.parametrize(
    "origin",
    [
        "http://127.0.0.1:8767",
        "http://chat-b.example",
        "https://127.0.0.1:8766",
        "http://evil.example",
        "null",
        "http://127.0.0.1:8766.evil.example",
    ],
)
def test_every_other_origin_is_still_refused(origin):
    allowed = [parse_origin(peer) for peer in PEERS]
    refusal = handshake_refusal(
        _host_and_origin("127.0.0.1:8765", origin), "127.0.0.1", allowed_origins=allowed
    )
    assert refusal is not None and "Origem não permitida" in refusal


def test_an_allowed_origin_does_not_admit_a_foreign_host():
    # DNS rebinding stays refused: the Host check comes first, whatever the Origin.
    headers = _host_and_origin("evil.example:8765", "http://127.0.0.1:8766")
    refusal = handshake_refusal(headers, "127.0.0.1", allowed_origins=["http://127.0.0.1:8766"])
    assert refusal is not None and "Host não reconhecido" in refusal


def test_the_page_may_connect_to_the_peers_and_nowhere_else():
    alone = StaticFiles().response("/").headers["Content-Security-Policy"]
    assert "connect-src 'self';" in alone
    policy = (
        StaticFiles(["ws://127.0.0.1:8766/ws"]).response("/").headers["Content-Security-Policy"]
    )
    assert "connect-src 'self' ws://127.0.0.1:8766/ws;" in policy


def test_a_page_of_another_origin_is_refused_by_a_cluster_node(opened):
    from websockets.exceptions import InvalidStatus

    with chat_server(other_nodes=["http://127.0.0.1:8766"]) as server:
        with pytest.raises(InvalidStatus) as refused:
            opened(server.ws_url, origin="http://127.0.0.1:8767")
        assert refused.value.response.status_code == 403
        assert "Origem não permitida" in refused.value.response.body.decode()


# -- over a real server ------------------------------------------------------------------


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
        return read_head(raw).split(b"\r\n", 1)[0]


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
        return read_head(raw)


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
