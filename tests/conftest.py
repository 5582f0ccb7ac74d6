"""Shared pytest settings: one hypothesis profile, no per-example deadline.

Deadlines turn a slow CI machine into a false failure; tests assert behaviour,
benchmarks/ measure speed.
"""

import contextlib

import pytest
from chatclient import WAIT, chat_server, hello, until
from hypothesis import HealthCheck, settings
from websockets.sync.client import connect

settings.register_profile(
    "wslab",
    deadline=None,
    max_examples=100,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile("wslab")


@pytest.fixture
def opened():
    """Open client connections (websockets' sync client) that are all closed when the
    test ends."""
    with contextlib.ExitStack() as stack:

        def open_connection(url, **options):
            return stack.enter_context(connect(url, open_timeout=WAIT, close_timeout=1, **options))

        yield open_connection


@pytest.fixture
def join(opened):
    """Connect and say hello: ``join(server, user) -> (connection, welcome)``."""

    def join_as(server, user, secret="segredo", resume=None):
        ws = opened(server.ws_url)
        return ws, hello(ws, user, secret, resume)

    return join_as


@pytest.fixture
def server():
    """A ChatServer with the tests' settings (``chatclient.chat_server``), stopped after
    the test."""
    with chat_server() as running:
        yield running


@pytest.fixture(scope="module")
def valkey(tmp_path_factory):
    """One real Valkey server per test module (wslab.chat.testing.valkey), stopped after
    it; tests that restart or kill it leave it running again."""
    from wslab.chat.testing.valkey import LocalValkey

    server = LocalValkey(tmp_path_factory.mktemp("valkey")).start()
    yield server
    server.stop()


@pytest.fixture
def valkey_url(valkey):
    """The module's Valkey, running and empty (FLUSHALL) for this test."""
    import redis

    # A test before may have killed or restarted it: wait (bounded) until it answers.
    def flushed():
        if not valkey.running():
            valkey.start()
        try:
            with redis.Redis.from_url(valkey.url, socket_timeout=WAIT) as client:
                return client.flushall()
        except (redis.ConnectionError, redis.BusyLoadingError):
            return False

    until(flushed, within=2 * WAIT, step=0.1)
    return valkey.url
