"""The replica greets, ignores what it is sent, answers ping and close, and stops cleanly."""

import signal
import socket
import subprocess
import sys

import pytest
import websocket

from wslab.challenge.badservers import BadServer
from wslab.challenge.provenance import RECORDED_MESSAGE
from wslab.challenge.replica import Replica
from wslab.protocol.frames import Close, CloseCode, Frame, Opcode, decode_frame
from wslab.protocol.handshake import build_request, generate_key


def test_greets_each_client_with_the_recorded_message():
    with Replica() as replica:
        for _ in range(2):
            ws = websocket.create_connection(replica.url, timeout=2)
            assert ws.recv() == RECORDED_MESSAGE
            ws.close()


def test_ignores_text_and_answers_ping_and_close():
    with Replica() as replica:
        ws = websocket.create_connection(replica.url, timeout=2)
        ws.recv()
        ws.send("oi")
        ws.ping(b"still there?")
        opcode, frame = ws.recv_data_frame(control_frame=True)
        assert opcode == websocket.ABNF.OPCODE_PONG and frame.data == b"still there?"
        ws.send_close(1000, b"tchau")
        opcode, frame = ws.recv_data_frame(control_frame=True)
        assert opcode == websocket.ABNF.OPCODE_CLOSE
        assert int.from_bytes(frame.data[:2], "big") == 1000
        ws.shutdown()


def test_stop_closes_open_connections_with_going_away():
    replica = Replica().start()
    ws = websocket.create_connection(replica.url, timeout=2)
    ws.recv()
    replica.stop()
    opcode, frame = ws.recv_data_frame(control_frame=True)
    assert opcode == websocket.ABNF.OPCODE_CLOSE
    assert int.from_bytes(frame.data[:2], "big") == 1001
    ws.shutdown()


def test_port_is_unknown_before_start():
    with pytest.raises(RuntimeError):
        _ = Replica().port


def test_bad_server_rejects_an_unknown_mode():
    with pytest.raises(ValueError, match="unknown mode"):
        BadServer("explode")


def test_runs_in_the_foreground_from_the_command_line():
    process = subprocess.Popen(
        [sys.executable, "-u", "-m", "wslab.replica"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        line = process.stdout.readline()
        url = line.split(" em ", 1)[1].split()[0]
        ws = websocket.create_connection(url, timeout=2)
        assert ws.recv() == RECORDED_MESSAGE
        ws.close()
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=10) == 0
    finally:
        process.kill()
        process.stdout.close()


def test_a_client_breaking_the_protocol_disturbs_nobody_else(caplog):
    with Replica() as replica:
        good = websocket.create_connection(replica.url, timeout=2)
        good.recv()
        key = generate_key()
        with socket.create_connection((replica.host, replica.port), timeout=2) as bad:
            bad.sendall(build_request(replica.url, key))
            greeting = b""
            while not greeting.endswith(RECORDED_MESSAGE.encode()):  # 101, then the greeting frame
                chunk = bad.recv(4096)
                assert chunk, "the replica closed before its greeting"
                greeting += chunk
            bad.sendall(Frame(Opcode.TEXT, b"unmasked").encode(mask=None))
            closing = b""
            while chunk := bad.recv(4096):
                closing += chunk
        frame, _ = decode_frame(closing)
        assert Close.parse(frame.payload).code == CloseCode.PROTOCOL_ERROR
        good.ping(b"ok?")
        opcode, pong = good.recv_data_frame(control_frame=True)
        assert opcode == websocket.ABNF.OPCODE_PONG and pong.data == b"ok?"
        good.close()
    assert not [r for r in caplog.records if r.levelname == "ERROR"]
