"""The test-controlled TCP proxy (wslab.chat.testing.proxy): it forwards, a cut ends
the connections that named themselves with the marker (and only those), and new ones
are refused until it heals."""

from __future__ import annotations

import redis
from chatclient import until

from wslab.chat.testing.proxy import TcpProxy


def through(proxy, name):
    """A client through ``proxy`` that names itself ``name`` on connecting."""
    return redis.Redis(
        host=proxy.host, port=proxy.port, client_name=name, socket_timeout=2, retry=None
    )


def answers(client) -> bool:
    try:
        return client.ping()
    except (redis.ConnectionError, redis.TimeoutError):
        return False


def test_a_cut_ends_the_marked_connections_only_until_it_heals(valkey):
    proxy = TcpProxy((valkey.host, valkey.port))
    try:
        cut_off, spared = through(proxy, "wslab-chat-1"), through(proxy, "other")
        assert answers(cut_off) and answers(spared)
        assert proxy.cut(b"wslab-chat-1") == 1
        assert answers(spared)
        until(lambda: not answers(cut_off))
        assert not answers(through(proxy, "wslab-chat-1"))  # a new one is cut too
        proxy.heal()
        assert answers(through(proxy, "wslab-chat-1"))
    finally:
        proxy.close()
