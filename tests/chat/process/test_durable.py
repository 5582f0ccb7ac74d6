"""The durable chat over real sockets and a real server process: SIGKILL during traffic,
restart on the same file, and nothing acknowledged is lost."""

import json
import signal
import subprocess
import sys
import threading
import time

import pytest
from chatclient import WAIT, closed_with, hello, receive, say, serve_process
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

SENDERS = 4


def _start(cwd, *args):
    """A server in ``cwd``: (process, ws url)."""
    return serve_process(*args, cwd=cwd)


def _stop(process):
    process.kill()
    process.wait(timeout=WAIT)


def _sender(url, user, acked, stop):
    """Send numbered lines, recording (offset, text) of each echo received."""
    try:
        with connect(url, open_timeout=WAIT, close_timeout=1) as ws:
            hello(ws, user)
            n = 0
            while not stop.is_set():
                n += 1
                say(ws, f"{user}-{n}")
                while True:
                    frame = json.loads(ws.recv(timeout=WAIT))
                    if frame["type"] == "message" and frame["from"] == user:
                        acked.append((frame["offset"], frame["text"]))
                        break
    except (ConnectionClosed, OSError, TimeoutError):
        pass  # the server was killed


def _history(url, user="leitor"):
    """Every kept message, read by resuming from offset 0 (epoch, recovered, list)."""
    with connect(url, open_timeout=WAIT, close_timeout=1) as probe:
        probe.send(json.dumps({"type": "hello", "user": user, "secret": "segredo"}))
        epoch = json.loads(probe.recv(timeout=WAIT))["epoch"]
    with connect(url, open_timeout=WAIT, close_timeout=1) as ws:
        welcome = hello(ws, user, resume={"epoch": epoch, "offset": 0})
        messages = []
        while True:
            try:
                frame = json.loads(ws.recv(timeout=0.5))
            except TimeoutError:
                break
            messages.append(frame)
        return welcome, messages


@pytest.mark.parametrize("where", ["--db", "default file"])
def test_sigkill_during_traffic_loses_nothing_acknowledged(tmp_path, where):
    args = ["--db", str(tmp_path / "chat.db")] if where == "--db" else []
    process, url = _start(tmp_path, *args)
    try:
        with connect(url, open_timeout=WAIT, close_timeout=1) as ana:
            hello(ana, "ana", "certo")
        acked = [[] for _ in range(SENDERS)]
        stop = threading.Event()
        threads = [
            threading.Thread(target=_sender, args=(url, f"u{i}", acked[i], stop))
            for i in range(SENDERS)
        ]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 4 * WAIT
        while sum(map(len, acked)) < 200 and time.monotonic() < deadline:
            time.sleep(0.01)
        process.send_signal(signal.SIGKILL)  # in the middle of the traffic
        process.wait(timeout=WAIT)
        stop.set()
        for t in threads:
            t.join(timeout=2 * WAIT)
    finally:
        _stop(process)
    everything = sorted(a for sender in acked for a in sender)
    assert len(everything) >= 200

    process, url = _start(tmp_path, *args)
    try:
        welcome, messages = _history(url)
        assert welcome["recovered"] is True
        kept = {m["offset"]: m["text"] for m in messages if m["type"] == "message"}
        offsets = [m["offset"] for m in messages if m["type"] == "message"]
        assert offsets == list(range(1, len(offsets) + 1))  # contiguous, none twice
        for offset, text in everything:
            assert kept.get(offset) == text, f"offset {offset} ({text}) perdido"
        # the registered name still refuses a wrong secret
        with connect(url, open_timeout=WAIT, close_timeout=1) as intruder:
            intruder.send(json.dumps({"type": "hello", "user": "ana", "secret": "errado"}))
            assert closed_with(intruder)[0] == 4001
        if where == "default file":
            assert (tmp_path / "wslab-chat.db").exists()
    finally:
        _stop(process)


def test_a_resume_after_a_restart_is_recovered_with_exactly_what_was_missed(tmp_path):
    db = ["--db", str(tmp_path / "chat.db")]
    process, url = _start(tmp_path, *db)
    try:
        with (
            connect(url, open_timeout=WAIT, close_timeout=1) as ana,
            connect(url, open_timeout=WAIT, close_timeout=1) as joao,
        ):
            welcome = hello(ana, "ana")
            hello(joao, "joao")
            say(joao, "antes")
            seen = receive(ana)["offset"]
            ana.close()
            say(joao, "/msg ana enquanto você estava fora")
            say(joao, "público enquanto ana estava fora")
            receive(joao), receive(joao), receive(joao)
    finally:
        process.send_signal(signal.SIGKILL)
        _stop(process)
    process, url = _start(tmp_path, *db)
    try:
        with connect(url, open_timeout=WAIT, close_timeout=1) as ana:
            back = hello(ana, "ana", resume={"epoch": welcome["epoch"], "offset": seen})
            assert back["recovered"] is True and back["epoch"] == welcome["epoch"]
            got = [receive(ana), receive(ana)]
            assert [(m["offset"], m["text"], m["replayed"]) for m in got] == [
                (seen + 1, "enquanto você estava fora", True),
                (seen + 2, "público enquanto ana estava fora", True),
            ]
            with pytest.raises(TimeoutError):
                ana.recv(timeout=0.3)
    finally:
        _stop(process)


def test_a_memory_store_restart_gives_a_new_epoch_and_announces_the_gap(tmp_path):
    process, url = _start(tmp_path, "--db", ":memory:")
    try:
        with connect(url, open_timeout=WAIT, close_timeout=1) as ana:
            welcome = hello(ana, "ana")
            say(ana, "perdida")
            receive(ana)
    finally:
        _stop(process)
    process, url = _start(tmp_path, "--db", ":memory:")
    try:
        with connect(url, open_timeout=WAIT, close_timeout=1) as ana:
            back = hello(ana, "ana", resume={"epoch": welcome["epoch"], "offset": 1})
            assert back["recovered"] is False and back["epoch"] != welcome["epoch"]
            notice = receive(ana)
            assert notice["type"] == "system" and "época" in notice["text"]
        assert not list(tmp_path.iterdir())  # nothing written to disk
    finally:
        _stop(process)


def test_a_database_that_cannot_be_opened_ends_the_start_with_one_sentence(tmp_path):
    (tmp_path / "chat.db").write_bytes(b"x" * 4096)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "wslab.chat",
            "serve",
            "--port",
            "0",
            "--db",
            str(tmp_path / "chat.db"),
        ],
        capture_output=True,
        text=True,
        timeout=4 * WAIT,
    )
    assert result.returncode == 1
    assert "corrompido" in result.stderr and "Traceback" not in result.stderr


def test_a_new_device_asks_for_history_and_sees_its_private_messages(tmp_path):
    process, url = _start(tmp_path, "--db", str(tmp_path / "chat.db"))
    try:
        with connect(url, open_timeout=WAIT, close_timeout=1) as joao:
            hello(joao, "joao")
            hello_ana = connect(url, open_timeout=WAIT, close_timeout=1)
            with hello_ana as ana:
                hello(ana, "ana")
            say(joao, "/msg ana oi, está aí?")
            say(joao, "/msg bia não é para a ana")
            say(joao, "bom dia a todos")
            for _ in range(2):
                receive(joao)
            assert receive(joao)["type"] in ("message", "error")
        with connect(url, open_timeout=WAIT, close_timeout=1) as phone:
            phone.send(
                json.dumps(
                    {
                        "type": "hello",
                        "user": "ana",
                        "secret": "segredo",
                        "resume": None,
                        "history": 10,
                    }
                )
            )
            welcome = json.loads(phone.recv(timeout=WAIT))
            assert welcome["type"] == "welcome" and welcome["recovered"] is False
            got = [receive(phone), receive(phone)]
            assert [(m["text"], m["replayed"]) for m in got] == [
                ("oi, está aí?", True),
                ("bom dia a todos", True),
            ]
    finally:
        _stop(process)
