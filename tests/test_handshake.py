"""Tests of the sans-I/O opening handshake against RFC 6455 and the websockets library."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given
from hypothesis import strategies as st
from websockets.client import ClientProtocol
from websockets.http11 import Request as WsRequest
from websockets.http11 import Response as WsResponse
from websockets.server import ServerProtocol
from websockets.uri import parse_uri
from websockets.utils import accept_key as ws_accept_key

from wslab.protocol import NeedData
from wslab.protocol.handshake import (
    HandshakeError,
    HandshakeRule,
    Response,
    accept,
    accept_key,
    build_request,
    check_request,
    check_response,
    generate_key,
    parse_request,
    parse_response,
)

RFC_KEY = "dGhlIHNhbXBsZSBub25jZQ=="
RFC_ACCEPT = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


def test_rfc_section_1_3_example():
    assert accept_key(RFC_KEY) == RFC_ACCEPT


@given(st.binary(min_size=16, max_size=16))
def test_accept_agrees_with_websockets(nonce):
    key = generate_key(nonce)
    assert len(key) == 24 and base64.b64decode(key) == nonce
    assert accept_key(key) == ws_accept_key(key)


def test_generated_keys_are_random_by_default():
    assert generate_key() != generate_key()


def test_key_needs_16_bytes():
    with pytest.raises(HandshakeError) as info:
        generate_key(b"short")
    assert info.value.rule is HandshakeRule.BAD_KEY
    with pytest.raises(HandshakeError) as info:
        build_request("ws://example.test/", "c2hvcnQ=")
    assert info.value.rule is HandshakeRule.BAD_KEY


def test_request_bytes():
    request = build_request("ws://example.test:8080/chat?room=1", RFC_KEY)
    assert request == (
        b"GET /chat?room=1 HTTP/1.1\r\n"
        b"Host: example.test:8080\r\n"
        b"Upgrade: websocket\r\n"
        b"Connection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        b"Sec-WebSocket-Version: 13\r\n"
        b"\r\n"
    )


@pytest.mark.parametrize(
    "url, host",
    [
        ("ws://example.test", "example.test"),
        ("ws://example.test:80/", "example.test"),
        ("wss://example.test:443/", "example.test"),
        ("wss://example.test:80/", "example.test:80"),
        ("ws://[::1]:9000/", "[::1]:9000"),
    ],
)
def test_host_header_omits_default_port(url, host):
    assert f"\r\nHost: {host}\r\n".encode() in build_request(url, RFC_KEY)


@pytest.mark.parametrize("url", ["http://example.test/", "ws:///path", "ws://h/#frag"])
def test_bad_urls(url):
    with pytest.raises(HandshakeError) as info:
        build_request(url, RFC_KEY)
    assert info.value.rule is HandshakeRule.BAD_URL


def test_websockets_server_accepts_our_request_and_we_accept_its_response():
    """Feed our request to websockets' sans-I/O server and check its 101 with our code."""
    key = generate_key(bytes(range(16)))
    server = ServerProtocol()
    server.receive_data(build_request("ws://example.test/", key))
    [request] = server.events_received()
    assert isinstance(request, WsRequest) and request.headers["Sec-WebSocket-Key"] == key
    server.send_response(server.accept(request))
    wire = b"".join(server.data_to_send())
    response, used = parse_response(wire + b"\x81\x00")
    assert used == len(wire)
    assert (response.status, response.reason) == (101, "Switching Protocols")
    check_response(response, key)


RESPONSE = (
    b"HTTP/1.1 101 Switching Protocols\r\n"
    b"Upgrade: websocket\r\n"
    b"Connection: Upgrade\r\n"
    b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
    b"\r\n"
)


def test_parse_response_and_leftover_frame():
    first_frame = b"\x81\x05Hello"
    response, used = parse_response(RESPONSE + first_frame)
    assert response == Response(
        101,
        "Switching Protocols",
        (("Upgrade", "websocket"), ("Connection", "Upgrade"), ("Sec-WebSocket-Accept", RFC_ACCEPT)),
    )
    assert (RESPONSE + first_frame)[used:] == first_frame
    assert response.get("sec-websocket-accept") == RFC_ACCEPT
    check_response(response, RFC_KEY)


@given(st.integers(0, len(RESPONSE) - 1))
def test_truncated_response_needs_data(cut):
    assert isinstance(parse_response(RESPONSE[:cut]), NeedData)


def test_response_head_too_large():
    with pytest.raises(HandshakeError) as info:
        parse_response(b"HTTP/1.1 101 OK\r\nX: " + b"a" * 20000)
    assert info.value.rule is HandshakeRule.HEAD_TOO_LARGE


@pytest.mark.parametrize(
    "head",
    [
        b"HTTP/1.0 101 Switching Protocols\r\n\r\n",
        b"HTTP/1.1 1O1 Switching\r\n\r\n",
        b"HTTP/1.1 101 OK\r\nno colon here\r\n\r\n",
        b"HTTP/1.1 101 OK\r\n : empty name\r\n\r\n",
    ],
)
def test_malformed_response(head):
    with pytest.raises(HandshakeError) as info:
        parse_response(head)
    assert info.value.rule is HandshakeRule.MALFORMED_RESPONSE


def replace(header: bytes, new: bytes | None) -> bytes:
    lines = [line for line in RESPONSE.split(b"\r\n") if not line.startswith(header + b":")]
    if new is not None:
        lines.insert(1, new)
    return b"\r\n".join(lines)


@pytest.mark.parametrize(
    "wire, rule",
    [
        (RESPONSE.replace(b"101 Switching Protocols", b"200 OK"), HandshakeRule.NOT_SWITCHING),
        (replace(b"Upgrade", None), HandshakeRule.MISSING_UPGRADE),
        (replace(b"Upgrade", b"Upgrade: h2c"), HandshakeRule.MISSING_UPGRADE),
        (replace(b"Connection", b"Connection: keep-alive"), HandshakeRule.MISSING_CONNECTION),
        (replace(b"Sec-WebSocket-Accept", None), HandshakeRule.MISSING_ACCEPT),
        (
            replace(b"Sec-WebSocket-Accept", b"Sec-WebSocket-Accept: " + RFC_KEY.encode()),
            HandshakeRule.BAD_ACCEPT,
        ),
        (
            replace(b"X", b"Sec-WebSocket-Extensions: permessage-deflate"),
            HandshakeRule.UNEXPECTED_EXTENSION,
        ),
        (replace(b"X", b"Sec-WebSocket-Protocol: chat"), HandshakeRule.UNEXPECTED_SUBPROTOCOL),
    ],
)
def test_check_response_rules(wire, rule):
    response, _ = parse_response(wire)
    with pytest.raises(HandshakeError) as info:
        check_response(response, RFC_KEY)
    assert info.value.rule is rule


def test_header_tokens_are_case_insensitive():
    response, _ = parse_response(
        RESPONSE.replace(b"Upgrade: websocket", b"upgrade: WebSocket").replace(
            b"Connection: Upgrade", b"connection: keep-alive, upgrade"
        )
    )
    check_response(response, RFC_KEY)


def test_accept_is_for_this_key_only():
    response, _ = parse_response(RESPONSE)
    with pytest.raises(HandshakeError) as info:
        check_response(response, generate_key(bytes(16)))
    assert info.value.rule is HandshakeRule.BAD_ACCEPT
    assert RFC_ACCEPT in str(info.value)


# -- server side ----------------------------------------------------------------------

REQUEST = build_request("ws://example.test/chat", RFC_KEY)


def test_parse_request_and_leftover_frame():
    request, used = parse_request(REQUEST + b"\x81\x80abcd")
    assert used == len(REQUEST)
    assert (request.method, request.target) == ("GET", "/chat")
    assert request.get("sec-websocket-key") == RFC_KEY
    assert check_request(request) == RFC_KEY


@given(st.integers(0, len(REQUEST) - 1))
def test_truncated_request_needs_data(cut):
    assert isinstance(parse_request(REQUEST[:cut]), NeedData)


def test_our_101_agrees_with_ours_and_with_websockets_client():
    request, _ = parse_request(REQUEST)
    wire = accept(request).serialize()
    response, used = parse_response(wire)
    assert used == len(wire) and response.status == 101
    check_response(response, RFC_KEY)
    # websockets' sans-I/O client checks the same 101 for a key of its own
    client = ClientProtocol(parse_uri("ws://example.test/"))
    theirs = client.connect()
    ours, _ = parse_request(theirs.serialize())
    client.receive_data(accept(ours).serialize())
    [event] = client.events_received()
    assert isinstance(event, WsResponse) and client.handshake_exc is None


def request_with(header: bytes, new: bytes | None) -> bytes:
    lines = [line for line in REQUEST.split(b"\r\n") if not line.startswith(header + b":")]
    if new is not None:
        lines.insert(1, new)
    return b"\r\n".join(lines)


@pytest.mark.parametrize(
    "wire, rule, status",
    [
        (request_with(b"Host", None), HandshakeRule.MISSING_HOST, 400),
        (request_with(b"Upgrade", b"Upgrade: h2c"), HandshakeRule.MISSING_UPGRADE, 400),
        (request_with(b"Connection", b"Connection: close"), HandshakeRule.MISSING_CONNECTION, 400),
        (request_with(b"Sec-WebSocket-Key", None), HandshakeRule.BAD_KEY, 400),
        (
            request_with(b"Sec-WebSocket-Key", b"Sec-WebSocket-Key: c2hvcnQ="),
            HandshakeRule.BAD_KEY,
            400,
        ),
        (
            request_with(b"Sec-WebSocket-Version", b"Sec-WebSocket-Version: 8"),
            HandshakeRule.BAD_VERSION,
            426,
        ),
    ],
)
def test_check_request_rules_and_the_answer(wire, rule, status):
    request, _ = parse_request(wire)
    with pytest.raises(HandshakeError) as info:
        check_request(request)
    assert (info.value.rule, info.value.status) == (rule, status)
    response, _ = parse_response(accept(request).serialize())
    assert response.status == status
    assert (response.get("Sec-WebSocket-Version") == "13") == (status == 426)


@pytest.mark.parametrize(
    "head",
    [
        b"POST / HTTP/1.1\r\nHost: h\r\n\r\n",
        b"GET / HTTP/1.0\r\nHost: h\r\n\r\n",
        b"GET  / HTTP/1.1\r\nHost: h\r\n\r\n",
        b"GET / HTTP/1.1\r\nno colon\r\n\r\n",
    ],
)
def test_malformed_request(head):
    with pytest.raises(HandshakeError) as info:
        parse_request(head)
    assert (info.value.rule, info.value.status) == (HandshakeRule.MALFORMED_REQUEST, 400)
