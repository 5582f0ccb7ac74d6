"""Tapped sockets keep the head of the traffic once, and hold every call to a deadline."""

import socket
import time

import pytest

from wslab.challenge.replica import Replica
from wslab.challenge.tap import TAP_LIMIT, TappedSocket, tapped_tls_context
from wslab.protocol.handshake import build_request, generate_key


def _connected(replica) -> TappedSocket:
    sock = TappedSocket(socket.AF_INET, socket.SOCK_STREAM)
    sock.settimeout(2)
    sock.connect((replica.host, replica.port))
    return sock


def test_plain_socket_records_what_it_sends_and_receives():
    with Replica() as replica:
        request = build_request(replica.url, generate_key())
        with _connected(replica) as sock:
            sock.sendall(request)
            head = sock.recv(4096)
            assert sock.sent == request
            assert sock.received == head and head.startswith(b"HTTP/1.1 101")


def test_tls_socket_records_plain_text_once():
    """ssl.SSLSocket.sendall calls send(): recording in both would double the request."""
    with Replica(tls=True) as replica:
        url = replica.url.replace("127.0.0.1", "localhost")
        request = build_request(url, generate_key())
        context = tapped_tls_context(replica.ca_file)
        with context.wrap_socket(_connected(replica), server_hostname="localhost") as tls:
            tls.sendall(request)
            assert tls.recv(4096).startswith(b"HTTP/1.1 101")
            assert tls.sent == request


def test_only_the_head_of_a_long_exchange_is_kept():
    left, right = socket.socketpair()
    with left, right:
        tapped = TappedSocket(fileno=left.detach())
        with tapped:
            for _ in range(3):
                tapped.sendall(b"x" * TAP_LIMIT)
                right.recv(TAP_LIMIT, socket.MSG_WAITALL)
            assert len(tapped.sent) == TAP_LIMIT


def test_a_deadline_bounds_a_read_whatever_the_socket_timeout():
    left, right = socket.socketpair()
    with left, right:
        tapped = TappedSocket(fileno=left.detach())
        with tapped:
            tapped.settimeout(30)
            tapped.deadline = time.perf_counter() + 0.3
            started = time.monotonic()
            with pytest.raises(TimeoutError):
                tapped.recv(1)
            assert time.monotonic() - started < 2.0
            with pytest.raises(TimeoutError, match="deadline"):
                tapped.recv(1)  # past the deadline: fails at once
