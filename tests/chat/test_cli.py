"""The command line (wslab.chat.cli): ``serve``'s options, and Ctrl-C on a real process."""

import select
import signal
import subprocess
import sys

import pytest
from chatclient import WAIT, closed_with, hello

from wslab.chat.cli import _parser


def test_serve_takes_peers_and_origins_and_refuses_a_bad_one(capsys):
    args = _parser().parse_args(
        ["serve", "--node", "http://127.0.0.1:8766/", "--allow-origin", "https://chat.example"]
    )
    assert args.node == ["http://127.0.0.1:8766"] and args.allow_origin == ["https://chat.example"]
    with pytest.raises(SystemExit):
        _parser().parse_args(["serve", "--node", "127.0.0.1:8766"])
    assert "não é uma origem" in capsys.readouterr().err


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
