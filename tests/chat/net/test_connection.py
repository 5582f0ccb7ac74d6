"""The guards on each connection's transport (wslab.chat.net.connection), over real
sockets: the read budget, the unread-output limit, bounded closes."""

import contextlib
import time

from chatclient import WAIT, chat_server, receive, say, silent_session


def test_a_client_flooding_bad_frames_without_reading_costs_bounded_output(join):
    """Each bad frame costs a line of the rate and earns an error frame; the flooder's
    socket is read no faster than its budget, and its unread output never passes
    the unread limit (past it, it is shed)."""
    with chat_server(max_pending=64 * 1024) as server:
        flooder = silent_session(server, "ruidosa", rcvbuf=4096)
        ana, _ = join(server, "ana")
        junk = bytes([0x81, 0x80 | 1]) + b"\x00\x00\x00\x00" + b"x"  # masked text "x"
        flooder.settimeout(0.2)
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline:
            with contextlib.suppress(TimeoutError):  # the server stopped reading it
                flooder.sendall(junk * 500)
        unread = server._call(_unread(server, "s1"), WAIT)
        assert unread is None or unread <= 64 * 1024 + 16 * 1024, unread  # shed, or under
        say(ana, "tudo bem")
        assert receive(ana)["text"] == "tudo bem"
        flooder.close()


async def _unread(server, session_id):
    """Bytes the session left unread, or None once it was shed."""
    if session_id not in server.service.session_ids():
        return None
    return server.service.connection(session_id).transport.get_write_buffer_size()


def test_a_client_that_stops_answering_pings_is_closed():
    with chat_server(ping_interval=0.1, ping_timeout=0.2, close_timeout=0.2) as server:
        raw = silent_session(server, "mudo")
        assert server.session_ids() == ["s1"]
        deadline = time.monotonic() + WAIT
        while server.session_ids() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert server.session_ids() == []
        raw.close()


def test_a_client_that_sends_too_big_a_frame_and_goes_silent_is_cut():
    """After 1009 the peer neither reads nor closes: the session still ends, bounded."""
    with chat_server(close_timeout=0.3) as server:
        raw = silent_session(server, "ana")
        size = 16 * 1024 + 1
        raw.sendall(bytes([0x81, 0x80 | 127]) + size.to_bytes(8, "big") + bytes(4 + size))
        deadline = time.monotonic() + WAIT
        while server.session_ids() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert server.session_ids() == []
        raw.close()


def test_stop_is_bounded_even_with_a_client_that_reads_nothing(join):
    # No shedding (max_pending of 1 GiB): the stuck client is still there at stop().
    with chat_server(close_timeout=0.3, max_pending=1 << 30, max_rate=None) as server:
        stuck = silent_session(server, "parada", rcvbuf=4096)
        ana, _ = join(server, "ana")
        for offset in range(1, 1501):  # megabytes queued towards the stuck client
            say(ana, "z" * 2000)
            assert receive(ana)["offset"] == offset
        assert "s1" in server.session_ids()
        server.stop(timeout=WAIT)  # raises TimeoutError if the close were unbounded
        stuck.close()
