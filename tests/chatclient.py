"""Client-side helpers for the chat's socket tests: every receive is bounded, so a
missing frame fails the test instead of hanging it."""

import json

import pytest
from websockets.exceptions import ConnectionClosed

from wslab.chat.testing import ServeProcess

WAIT = 3.0


def hello(ws, user, secret="segredo", resume=None):
    ws.send(json.dumps({"type": "hello", "user": user, "secret": secret, "resume": resume}))
    welcome = json.loads(ws.recv(timeout=WAIT))
    assert welcome["type"] == "welcome", welcome
    return welcome


def say(ws, text):
    ws.send(json.dumps({"type": "say", "text": text}))


def receive(ws):
    return json.loads(ws.recv(timeout=WAIT))


def closed_with(ws):
    """The close code and reason the server sent (waits for the close, bounded)."""
    with pytest.raises(ConnectionClosed) as caught:
        ws.recv(timeout=WAIT)
    return caught.value.rcvd.code, caught.value.rcvd.reason


def nothing_more(ws, within=0.2):
    with pytest.raises(TimeoutError):
        ws.recv(timeout=within)
    return True


def chat_server(*, max_rate=20.0, burst=40, **options):
    """A ChatServer for tests: secrets hashed cheaply (explicitly), limits as given."""
    from wslab.chat.node import Limits
    from wslab.chat.rules.kdf import CHEAP
    from wslab.chat.testing import ChatServer

    options.setdefault("kdf", CHEAP)
    options.setdefault("limits", Limits(max_rate=max_rate, burst=burst))
    return ChatServer(**options)


def serve_process(*options, cwd=None):
    """``python -m wslab.chat serve --port 0 --max-rate 0 --kdf-n 1024 OPTIONS`` as a
    real process that dies with the test run (a later option wins); (process, ws url)
    once it listens."""
    server = ServeProcess("--max-rate", "0", "--kdf-n", "1024", *options, cwd=cwd, wait=4 * WAIT)
    return server.start().process, server.ws_url
