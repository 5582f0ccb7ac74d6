"""Who may open /ws (Host and Origin), the static files, and the per-session rate limit."""

import pytest
from websockets.datastructures import Headers

from wslab.chat.net.http import StaticFiles, handshake_refusal, host_name
from wslab.chat.rules.ratelimit import TokenBucket


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


def test_token_bucket_allows_a_burst_then_the_rate():
    bucket = TokenBucket(rate=2.0, burst=3, now=0.0)
    assert [bucket.allow(0.0) for _ in range(4)] == [True, True, True, False]
    assert bucket.allow(0.25) is False  # half a token
    assert bucket.allow(0.5) is True  # one token after 0.5 s at 2/s
    assert [bucket.allow(100.0) for _ in range(4)] == [True, True, True, False]  # capped


def test_token_bucket_ignores_a_clock_going_back():
    bucket = TokenBucket(rate=1.0, burst=1, now=10.0)
    assert bucket.allow(10.0) is True
    assert bucket.allow(5.0) is False


@pytest.mark.parametrize("rate, burst", [(0, 1), (-1, 1), (1, 0)])
def test_token_bucket_refuses_nonsense(rate, burst):
    with pytest.raises(ValueError):
        TokenBucket(rate, burst, now=0.0)
