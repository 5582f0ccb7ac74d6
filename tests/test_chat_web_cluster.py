"""Who may open /ws on a chat of several nodes: each node admits the other nodes'
origins (``--node``) and the ones the operator names (``--allow-origin``), and still
refuses every other; the page may connect to the peers (CSP); the welcome lists them."""

import pytest
from chatclient import chat_server, hello
from websockets.datastructures import Headers

from wslab.chat.cli import _parser
from wslab.chat.net.http import StaticFiles, handshake_refusal, parse_origin, socket_url

PEERS = ["http://127.0.0.1:8766", "https://chat-b.example"]


def _headers(host, origin):
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
    headers = _headers("127.0.0.1:8765", origin)
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
        _headers("127.0.0.1:8765", origin), "127.0.0.1", allowed_origins=allowed
    )
    assert refusal is not None and "Origem não permitida" in refusal


def test_an_allowed_origin_does_not_admit_a_foreign_host():
    # DNS rebinding stays refused: the Host check comes first, whatever the Origin.
    headers = _headers("evil.example:8765", "http://127.0.0.1:8766")
    refusal = handshake_refusal(headers, "127.0.0.1", allowed_origins=["http://127.0.0.1:8766"])
    assert refusal is not None and "Host não reconhecido" in refusal


def test_the_page_may_connect_to_the_peers_and_nowhere_else():
    alone = StaticFiles().response("/").headers["Content-Security-Policy"]
    assert "connect-src 'self';" in alone
    policy = (
        StaticFiles(["ws://127.0.0.1:8766/ws"]).response("/").headers["Content-Security-Policy"]
    )
    assert "connect-src 'self' ws://127.0.0.1:8766/ws;" in policy


def test_serve_takes_peers_and_origins_and_refuses_a_bad_one(capsys):
    args = _parser().parse_args(
        ["serve", "--node", "http://127.0.0.1:8766/", "--allow-origin", "https://chat.example"]
    )
    assert args.node == ["http://127.0.0.1:8766"] and args.allow_origin == ["https://chat.example"]
    with pytest.raises(SystemExit):
        _parser().parse_args(["serve", "--node", "127.0.0.1:8766"])
    assert "não é uma origem" in capsys.readouterr().err


def test_the_welcome_lists_the_nodes_only_in_a_cluster(opened):
    with chat_server(other_nodes=["http://127.0.0.1:8766"]) as server:
        ws = opened(server.ws_url)
        welcome = hello(ws, "ana")
        assert welcome["nodes"] == [server.ws_url, "ws://127.0.0.1:8766/ws"]
        peer_page = opened(server.ws_url, origin="http://127.0.0.1:8766")
        assert hello(peer_page, "bia")["type"] == "welcome"
    with chat_server() as alone:
        assert "nodes" not in hello(opened(alone.ws_url), "ana")


def test_a_page_of_another_origin_is_refused_by_a_cluster_node(opened):
    from websockets.exceptions import InvalidStatus

    with chat_server(other_nodes=["http://127.0.0.1:8766"]) as server:
        with pytest.raises(InvalidStatus) as refused:
            opened(server.ws_url, origin="http://127.0.0.1:8767")
        assert refused.value.response.status_code == 403
        assert "Origem não permitida" in refused.value.response.body.decode()
