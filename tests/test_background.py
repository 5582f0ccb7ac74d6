"""wslab.background: the one lifecycle every local server shares."""

import socket

import pytest

from wslab.background import BackgroundServer
from wslab.protocol.handshake import url_host


class EchoOnce(BackgroundServer):
    """Accepts connections and sends b"hi" to each, until stopped."""

    def _serve(self, ready):
        with socket.create_server((self.host, self.requested_port)) as listener:
            listener.settimeout(0.05)
            ready(listener.getsockname()[1])
            while not self.stopping.is_set():
                try:
                    conn, _ = listener.accept()
                except TimeoutError:
                    continue
                with conn:
                    conn.sendall(b"hi")


def test_start_serves_and_stop_is_idempotent_and_restartable():
    server = EchoOnce()
    with pytest.raises(RuntimeError, match="not running"):
        _ = server.port
    for _ in range(2):  # a stopped server starts again
        with server:
            assert server.running and server.url_for("ws") == f"ws://127.0.0.1:{server.port}/"
            with socket.create_connection(("127.0.0.1", server.port), timeout=2) as client:
                assert client.recv(2) == b"hi"
            with pytest.raises(RuntimeError, match="already running"):
                server.start()
        assert not server.running and server.port  # the port stays known, for reports
        server.stop()  # idempotent


def test_a_failure_before_binding_is_raised_by_start():
    with EchoOnce() as first:
        taken = EchoOnce(port=first.port)
        with pytest.raises(OSError):
            taken.start()
        assert not taken.running
        taken.stop()


def test_a_server_that_never_binds_times_out():
    class Never(BackgroundServer):
        def _serve(self, ready):
            self.stopping.wait()

    with pytest.raises(TimeoutError, match="did not start"):
        Never().start(timeout=0.2)


def test_ipv6_hosts_are_bracketed_once():
    assert url_host("::1") == "[::1]" and url_host("[::1]") == "[::1]"
    assert url_host("127.0.0.1") == "127.0.0.1"
