"""The in-memory log's own clock: how long it remembers a line's id."""

from chatclient import run

from wslab.chat.rules.messages import Kind
from wslab.chat.rules.wire import RESEND_SECONDS
from wslab.chat.stores.memory import MemoryLog


def test_an_id_is_remembered_for_the_resend_window_then_forgotten():
    now = [0.0]
    log = MemoryLog(clock=lambda: now[0])

    async def go():
        first = await log.append(Kind.PUBLIC, "ana", None, "oi", "k1")
        now[0] = RESEND_SECONDS
        within = await log.append(Kind.PUBLIC, "ana", None, "oi", "k1")
        now[0] = RESEND_SECONDS + 0.5
        after = await log.append(Kind.PUBLIC, "ana", None, "oi", "k1")
        return first, within, after, len(log._ids)

    # The id is dropped once its window has passed: the memory holds one entry per
    # line of the last RESEND_SECONDS.
    assert run(go()) == (1, 1, 2, 1)
