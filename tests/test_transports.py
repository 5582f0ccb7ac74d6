"""wslab.transports: byte accounting checked by hand, receipt, shutdown, bad input."""

from __future__ import annotations

import http.client
import socket
import threading
import time

import pytest
import websocket
from hypothesis import given
from hypothesis import strategies as st

from wslab.transports import (
    ByteCounter,
    CountingHTTPConnection,
    Event,
    TickSchedule,
    default_transports,
    format_table,
    open_counting_socket,
    run_transport,
)
from wslab.transports.events import decode_batch, encode_batch
from wslab.transports.experiment import percentile
from wslab.transports.long_polling import LongPollingServer
from wslab.transports.server_sent_events import (
    ServerSentEventsServer,
    receive_by_server_sent_events,
)
from wslab.transports.short_polling import ShortPollingServer, get_events, receive_by_polling
from wslab.transports.websocket_push import WebSocketServer

HOST = "127.0.0.1"
SERVERS = [ShortPollingServer, LongPollingServer, ServerSentEventsServer, WebSocketServer]


def crlf(line: str) -> int:
    """Length of one header line plus its CRLF."""
    return len(line) + 2


# --- byte accounting, against counts made by hand ---------------------------------


def test_counting_socket_counts_a_known_request_and_reply():
    request = b"GET /events?after=-1 HTTP/1.1\r\nHost: example\r\n\r\n"
    # by hand: "GET /events?after=-1 HTTP/1.1" is 3+1+16+1+8 = 29 (+2 CRLF = 31),
    # "Host: example" is 13 (+2 = 15), then the empty line (2): 31 + 15 + 2 = 48
    reply = b"HTTP/1.1 204 No Content\r\n\r\n"  # 23 + 2 + 2 = 27
    with socket.create_server((HOST, 0)) as listener:
        counter = ByteCounter()
        with open_counting_socket(HOST, listener.getsockname()[1], counter, timeout=2) as sock:
            peer, _ = listener.accept()
            with peer:
                sock.sendall(request)
                got = b""
                while len(got) < len(request):
                    got += peer.recv(100)
                peer.sendall(reply)
                buffer = bytearray(100)
                assert sock.recv_into(buffer) == 27
    assert got == request
    assert (counter.sent, counter.received, counter.connections) == (48, 27, 1)


def test_one_empty_short_poll_costs_what_the_headers_add_up_to():
    source = TickSchedule(3, 1)  # not started: nothing is due, the answer is "[]"
    counter = ByteCounter()
    with ShortPollingServer(source) as server:
        port = server.port
        conn = CountingHTTPConnection(HOST, port, counter, timeout=2)
        try:
            assert get_events(conn, -1) == []
        finally:
            conn.close()
    host = f"Host: {HOST}:{port}"
    request = (
        crlf("GET /events?after=-1 HTTP/1.1") + crlf(host) + crlf("Accept-Encoding: identity") + 2
    )
    response = (
        crlf("HTTP/1.1 200 OK")  # 15 + 2
        + crlf("Server: wslab")  # 13 + 2
        + crlf("Date: Thu, 01 Jan 2026 00:00:00 GMT")  # IMF-fixdate: always 29 chars
        + crlf("Content-Type: application/json")  # 30 + 2
        + crlf("Cache-Control: no-store")  # 23 + 2
        + crlf("Content-Length: 2")  # 17 + 2
        + 2
        + len("[]")
    )
    assert request == 83 + len(str(port)) - 5
    assert response == 149
    assert (counter.sent, counter.received) == (request, response)


def test_websocket_handshake_frames_and_close_counted_by_hand():
    source = TickSchedule(1, 50)
    counter = ByteCounter()
    with WebSocketServer(source) as server:
        sock = open_counting_socket(HOST, server.port, counter, timeout=2)
        try:
            ws = websocket.create_connection(f"ws://{HOST}:{server.port}/", socket=sock, timeout=2)
            address = f"{HOST}:{server.port}"
            upgrade_request = (
                crlf("GET / HTTP/1.1")
                + crlf("Upgrade: websocket")
                + crlf(f"Host: {address}")
                + crlf(f"Origin: http://{address}")
                + crlf("Sec-WebSocket-Key: " + "k" * 24)  # 16 random bytes in base64
                + crlf("Sec-WebSocket-Version: 13")
                + crlf("Connection: Upgrade")
                + 2
            )
            switching = (
                crlf("HTTP/1.1 101 Switching Protocols")
                + crlf("Date: Thu, 01 Jan 2026 00:00:00 GMT")
                + crlf("Upgrade: websocket")
                + crlf("Connection: Upgrade")
                + crlf("Sec-WebSocket-Accept: " + "a" * 28)  # SHA-1 digest in base64
                + crlf("Server: wslab")
                + 2
            )
            assert (upgrade_request, switching) == (186 + 2 * (len(str(server.port)) - 5), 181)
            assert counter.snapshot() == (upgrade_request, switching)

            source.start()
            text = ws.recv()
            # server frame: 2 header bytes (FIN+opcode, 7-bit length 44), no mask, 44 payload
            assert len(text) == 44
            assert counter.received == switching + 2 + 44
            ws.send("hello")  # client frame: 2 header bytes + 4-byte mask + 5 payload
            assert counter.sent == upgrade_request + 11
            ws.send("x" * 200)  # length 200 > 125: 2 + 2 (16-bit length) + 4 mask + 200
            assert counter.sent == upgrade_request + 11 + 208
            before_close = counter.snapshot()
            ws.close(timeout=2)  # close 1000: ours 2 + 4 + 2 (code); the server's 2 + 2
            assert (counter.sent - before_close[0], counter.received - before_close[1]) == (8, 4)
        finally:
            sock.close()


def test_measurement_splits_websocket_bytes_into_handshake_events_and_close():
    websocket_transport = default_transports()[-1]
    m = run_transport(websocket_transport, count=5, rate=200)
    assert m.setup_bytes[1] == 181  # the 101 answer, counted by hand above
    assert m.event_bytes == (0, 5 * (2 + 44))
    assert m.closing_bytes == (8, 4)
    assert (m.requests, m.connections) == (1, 1)


def test_sse_bytes_per_event_are_the_chunk_and_the_block():
    source = TickSchedule(3, 200)
    counter = ByteCounter()
    with ServerSentEventsServer(source) as server:
        receipt = receive_by_server_sent_events(server.port, source, counter, timeout=2)
    # block "id: N\ndata: <44>\n\n" is 4+1+1 + 6+44+1 + 1 = 58 bytes for one-digit N,
    # sent as one chunk: "3a\r\n" + block + "\r\n" = 4 + 58 + 2 = 64
    assert receipt.stream_end_bytes[1] - receipt.setup_bytes[1] == 3 * 64
    assert receipt.stream_end_bytes[0] == receipt.setup_bytes[0]  # nothing sent after the request


# --- receipt: every event once, in order ------------------------------------------


@pytest.mark.parametrize(
    "transport", default_transports(poll_intervals=(0.003, 0.03)), ids=lambda t: t.name
)
def test_every_event_arrives_once_and_in_order(transport):
    m = run_transport(transport, count=25, rate=250)
    assert m.in_order_once, m.seqs
    assert len(m.latencies_ms) == 25 and all(latency >= 0 for latency in m.latencies_ms)
    assert m.connections == 1
    assert m.requests >= 1


def test_sse_resumes_after_last_event_id():
    source = TickSchedule(5, 1000)
    source.start(at=time.monotonic() - 1)  # everything is already due
    with ServerSentEventsServer(source) as server:
        conn = http.client.HTTPConnection(HOST, server.port, timeout=2)
        try:
            conn.request("GET", "/stream", headers={"Last-Event-ID": "2"})
            response = conn.getresponse()
            ids = []
            while len(ids) < 2:
                line = response.readline()
                assert line, "the stream ended before two events"
                if line.startswith(b"id: "):
                    ids.append(int(line[4:]))
        finally:
            conn.close()
    assert ids == [3, 4]


# --- servers always stop --------------------------------------------------------


def _open_client(server_class, port):
    """Leave a connection open in the middle of a stream (or a held request)."""
    if server_class is WebSocketServer:
        return websocket.create_connection(f"ws://{HOST}:{port}/", timeout=2)
    conn = http.client.HTTPConnection(HOST, port, timeout=2)
    path = "/stream" if server_class is ServerSentEventsServer else "/events?after=-1"
    conn.request("GET", path)
    if server_class is not LongPollingServer:
        conn.getresponse()  # SSE: headers arrive, the stream stays open; short poll: keep-alive idle
    return conn


@pytest.mark.parametrize("server_class", SERVERS, ids=lambda c: c.__name__)
def test_server_stops_when_the_with_body_raises(server_class):
    threads_before = threading.active_count()
    source = TickSchedule(1000, 1)  # a long stream: handlers would wait a long time
    started = time.monotonic()
    client = None
    with pytest.raises(RuntimeError, match="boom"), server_class(source) as server:
        port = server.port
        client = _open_client(server_class, port)
        source.start()
        raise RuntimeError("boom")
    elapsed = time.monotonic() - started
    client.close()
    assert elapsed < 3, "stopping must not wait for the stream or the held request"
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((HOST, port), timeout=1).close()
    deadline = time.monotonic() + 2
    while threading.active_count() > threads_before and time.monotonic() < deadline:
        time.sleep(0.01)
    assert threading.active_count() <= threads_before


@pytest.mark.parametrize("server_class", SERVERS, ids=lambda c: c.__name__)
def test_port_is_an_error_outside_the_with_block(server_class):
    with pytest.raises(RuntimeError, match="not running"):
        _ = server_class(TickSchedule(1, 1)).port


# --- bad input gets a clear error -------------------------------------------------


@pytest.mark.parametrize("path", ["/events?after=abc", "/events?after=-5"])
def test_polling_rejects_a_bad_after(path):
    with ShortPollingServer(TickSchedule(1, 1)) as server:
        conn = http.client.HTTPConnection(HOST, server.port, timeout=2)
        try:
            conn.request("GET", path)
            response = conn.getresponse()
            assert response.status == 400
            assert response.read() == b"400 query parameter after must be an integer, at least -1\n"
        finally:
            conn.close()


def test_unknown_path_is_404():
    with LongPollingServer(TickSchedule(1, 1)) as server:
        conn = http.client.HTTPConnection(HOST, server.port, timeout=2)
        try:
            conn.request("GET", "/nope")
            assert conn.getresponse().status == 404
        finally:
            conn.close()


@pytest.mark.parametrize(
    "count, rate", [(0, 1), (1, 0), (1, -2), (2.5, 1), (10**6, 1), (100, 0.001)]
)
def test_event_source_rejects_bad_arguments(count, rate):
    with pytest.raises(ValueError):
        TickSchedule(count, rate)


def test_short_polling_rejects_a_non_positive_interval():
    with pytest.raises(ValueError, match="interval"):
        receive_by_polling(1, TickSchedule(1, 1), ByteCounter(), interval=0)


def test_event_source_is_started_once():
    source = TickSchedule(1, 1)
    with pytest.raises(RuntimeError, match="not started"):
        _ = source.origin
    source.start()
    with pytest.raises(RuntimeError, match="already started"):
        source.start()


@pytest.mark.parametrize("text", ["", "[]", '{"type":"other","seq":1,"t":0}', '{"type":"tick"}'])
def test_event_decode_rejects_what_is_not_a_tick(text):
    with pytest.raises(ValueError, match="not a tick event"):
        Event.decode(text)


def test_decode_batch_rejects_a_non_array():
    with pytest.raises(ValueError, match="not a JSON array"):
        decode_batch(b'{"type":"tick","seq":1,"t":0}')


# --- the pure parts: encoding, schedule, percentile --------------------------------


@given(st.integers(0, 999_999), st.floats(0, 9_999, allow_nan=False))
def test_event_encoding_has_fixed_width_and_round_trips(seq, offset):
    event = Event(seq, offset)
    text = event.encode()
    assert len(text) == 44
    back = Event.decode(text)
    assert back.seq == seq and abs(back.offset - offset) <= 5e-7


@given(st.lists(st.integers(0, 999_999), max_size=20))
def test_batch_round_trips(seqs):
    events = [Event(seq, seq / 1000) for seq in seqs]
    assert [e.seq for e in decode_batch(encode_batch(events))] == seqs


def test_ready_after_follows_the_schedule():
    now = [100.0]
    source = TickSchedule(5, 10, clock=lambda: now[0])  # events due at +0.0, +0.1, ... +0.4 s
    assert source.ready_after(-1) == []  # not started
    source.start()
    assert [e.seq for e in source.ready_after(-1)] == [0]
    now[0] = 100.25
    assert [e.seq for e in source.ready_after(-1)] == [0, 1, 2]
    assert [e.seq for e in source.ready_after(1)] == [2]
    now[0] = 200.0
    assert [e.seq for e in source.ready_after(2)] == [3, 4]


def test_wait_for_returns_false_when_stopped_or_out_of_time():
    source = TickSchedule(2, 0.01)  # event 1 is due 100 s after the start
    source.start()
    stop = threading.Event()
    assert source.wait_for(0, stop, timeout=1) is True
    started = time.monotonic()
    assert source.wait_for(1, stop, timeout=0.05) is False
    threading.Timer(0.05, stop.set).start()
    assert source.wait_for(1, stop, timeout=5) is False
    assert time.monotonic() - started < 2


def test_percentile_is_nearest_rank():
    values = list(range(1, 101))
    assert (percentile(values, 50), percentile(values, 95), percentile(values, 100)) == (
        50,
        95,
        100,
    )
    assert percentile([3.0], 50) == 3.0
    with pytest.raises(ValueError):
        percentile([], 50)


def test_table_lists_each_measurement():
    m = run_transport(default_transports()[-1], count=3, rate=300)
    lines = format_table([m]).splitlines()
    assert lines[0].split()[:3] == ["transporte", "p50", "ms"]
    assert lines[2].startswith("WebSocket") and lines[2].split()[-2:] == ["1", "1"]
