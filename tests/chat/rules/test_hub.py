"""Who receives what (wslab.chat.rules.hub): the recipients of a message, the plan of a
resume and the read it needs, and a new session's buffer while its history is read.

The hub is pure: these tests build messages and log states by hand, open sessions with
plain objects as handles, and read what the hub answers.
"""

import pytest

from wslab.chat.errors import CloseCode, Refusal
from wslab.chat.rules.hub import Hub, Read, Recovery, resume_read, resume_verdict
from wslab.chat.rules.messages import Kind, LogState, Message, Notice, Outbound

EPOCH = "e1"


def public(offset, sender="bia", text=None):
    return Message(Kind.PUBLIC, offset, sender, None, text or f"m{offset}")


def private(offset, sender, to, text=None):
    return Message(Kind.PRIVATE, offset, sender, to, text or f"p{offset}")


def state(newest, oldest=1):
    return LogState(EPOCH, newest, oldest)


def live(hub, user, handle=None):
    """A session of ``user`` opened, recovered with nothing to replay, and live."""
    handle = handle if handle is not None else object()
    session_id = hub.open(user, handle)
    hub.recover(session_id, Recovery(None, state(0), [], 10))
    assert hub.go_live(session_id) == []
    return session_id, handle


# -- recipients ---------------------------------------------------------------------------


def test_a_public_message_goes_to_every_live_session_the_sender_included():
    hub = Hub()
    _, ana = live(hub, "ana")
    _, bia = live(hub, "bia")
    _, bia_phone = live(hub, "bia")
    assert list(hub.recipients(public(1, "ana"))) == [ana, bia, bia_phone]


def test_a_private_message_goes_to_both_users_sessions_only():
    hub = Hub()
    _, ana = live(hub, "ana")
    _, ana_phone = live(hub, "ana")
    _, bia = live(hub, "bia")
    live(hub, "joao")
    assert sorted(map(id, hub.recipients(private(1, "bia", "ana")))) == sorted(
        map(id, (bia, ana, ana_phone))
    )


def test_a_private_message_to_oneself_reaches_each_own_session_once():
    hub = Hub()
    _, ana = live(hub, "ana")
    _, ana_phone = live(hub, "ana")
    live(hub, "bia")
    assert list(hub.recipients(private(1, "ana", "ana"))) == [ana, ana_phone]


def test_a_private_message_from_another_node_reaches_the_recipient_here():
    hub = Hub()
    _, ana = live(hub, "ana")
    assert list(hub.recipients(private(1, "bia", "ana"))) == [ana]  # bia is elsewhere
    assert list(hub.recipients(private(2, "bia", "joao"))) == []


def test_consecutive_public_messages_share_one_snapshot_until_a_session_changes():
    hub = Hub()
    live(hub, "ana")
    first = hub.recipients(public(1))
    assert hub.recipients(public(2)) is first  # one tuple, built once
    session_id, _ = live(hub, "bia")
    grown = hub.recipients(public(3))
    assert grown is not first and len(grown) == 2
    hub.close(session_id)
    assert len(hub.recipients(public(4))) == 1


def test_route_gives_one_item_per_message_with_recipients_in_order():
    hub = Hub()
    _, ana = live(hub, "ana")
    messages = [public(1), private(2, "bia", "joao"), private(3, "bia", "ana")]
    items = hub.route(messages)
    assert [(item.item.offset, tuple(item.handles)) for item in items] == [(1, (ana,)), (3, (ana,))]
    assert not any(item.replayed for item in items)


def test_a_recovering_session_is_no_recipient():
    hub = Hub()
    hub.open("ana", object())
    assert hub.recipients(public(1)) == ()
    assert hub.route([public(1)]) == []
    assert hub.is_online("ana") and hub.online() == ["ana"]  # online all the same


def test_notices_go_to_one_session_or_to_every_live_one():
    hub = Hub()
    assert hub.announce("aviso") == []  # nobody live: nothing to send
    session_id, ana = live(hub, "ana")
    _, bia = live(hub, "bia")
    assert hub.reply(session_id, Kind.ERROR, "não") == Outbound(Notice(Kind.ERROR, "não"), (ana,))
    (item,) = hub.announce("aviso")
    assert item.item == Notice(Kind.SYSTEM, "aviso") and list(item.handles) == [ana, bia]


# -- sessions -----------------------------------------------------------------------------


def test_users_are_online_while_any_session_is_open():
    hub = Hub()
    first, _ = live(hub, "ana")
    second, _ = live(hub, "ana")
    live(hub, "bia")
    assert hub.online() == ["ana", "bia"] and len(hub) == 3
    hub.close(first)
    assert hub.online() == ["ana", "bia"] and hub.user_of(second) == "ana"
    hub.close(second)
    assert hub.online() == ["bia"] and not hub.is_online("ana")


def test_closing_an_unknown_or_closed_session_does_nothing_and_asking_for_it_is_a_key_error():
    hub = Hub()
    session_id, _ = live(hub, "ana")
    hub.close(session_id)
    hub.close(session_id)
    hub.close("nunca")
    assert len(hub) == 0 and hub.online() == []
    for bad in (session_id, "nunca", None):
        with pytest.raises(KeyError):
            hub.user_of(bad)
        with pytest.raises(KeyError):
            hub.reply(bad, Kind.ERROR, "x")


# -- resume_verdict and resume_read ---------------------------------------------------------


def test_resume_verdict_says_whether_a_point_can_be_resumed_exactly():
    now = state(newest=5, oldest=1)
    assert resume_verdict(None, now) == ""  # no point: a fresh session
    assert resume_verdict((EPOCH, 0), now) is None
    assert resume_verdict((EPOCH, 5), now) is None
    assert "época" in resume_verdict(("outra", 3), now)
    ahead = resume_verdict((EPOCH, 6), now)
    assert "Seu último offset (6)" in ahead and "mais nova (5)" in ahead


@pytest.mark.parametrize(
    ("point", "history", "read"),
    [
        (None, 0, Read()),  # a fresh session that asked for nothing
        (None, 3, Read(recent=3)),  # a new device asking for 3
        (None, 50, Read(recent=10)),  # never more than the retention
        ((EPOCH, 2), 0, Read(after=2)),  # an exact resume reads what follows
        ((EPOCH, 2), 3, Read(after=2)),  # whatever history it asked for
        (("outra", 2), 0, Read(recent=10)),  # another epoch: what the history holds
        (("outra", 2), 3, Read(recent=3)),
        ((EPOCH, 9), 0, Read(recent=10)),  # ahead of the newest: the same
    ],
)
def test_resume_read_names_the_one_read_a_new_session_needs(point, history, read):
    assert resume_read(point, state(newest=5), history, retention=10) == read


# -- plan -------------------------------------------------------------------------------------


def test_a_resume_in_the_history_is_recovered_with_what_the_user_may_see():
    messages = [public(3), private(4, "bia", "joao"), private(5, "joao", "ana")]
    recovered, notice, replay = Hub().plan("ana", Recovery((EPOCH, 2), state(5), messages, 10))
    assert (recovered, notice) == (True, None)
    assert [m.offset for m in replay] == [3, 5]


def test_a_resume_past_the_history_says_how_much_was_lost():
    kept = [public(n) for n in range(6, 11)]  # retention 5 kept 6..10
    recovered, notice, replay = Hub().plan("ana", Recovery((EPOCH, 2), state(10, 6), kept, 5))
    assert recovered is False
    assert notice == (
        "Você pode ter perdido mensagens: 3 das 8 enviadas desde o offset 2 já saíram do "
        "histórico, que guarda as últimas 5."
    )
    assert [m.offset for m in replay] == [6, 7, 8, 9, 10]


def test_a_resume_right_at_the_edge_of_the_history_is_recovered():
    kept = [public(n) for n in range(6, 11)]
    recovered, notice, _ = Hub().plan("ana", Recovery((EPOCH, 5), state(10, 6), kept, 5))
    assert (recovered, notice) == (True, None)


@pytest.mark.parametrize("point", [("outra", 3), (EPOCH, 99)])
def test_a_resume_that_cannot_be_exact_replays_the_recent_history_with_a_notice(point):
    recent = [public(4), private(5, "bia", "joao")]
    recovered, notice, replay = Hub().plan("ana", Recovery(point, state(5), recent, 10))
    assert recovered is False and notice == resume_verdict(point, state(5))
    assert [m.offset for m in replay] == [4]


def test_a_fresh_session_gets_the_history_it_asked_for_without_a_notice():
    recovered, notice, replay = Hub().plan("ana", Recovery(None, state(5), [public(5)], 10))
    assert (recovered, notice, [m.offset for m in replay]) == (False, None, [5])


# -- a new session's buffer -------------------------------------------------------------------


def test_what_arrives_while_the_history_is_read_comes_once_in_offset_order():
    hub = Hub()
    _, bia = live(hub, "bia")
    session_id = hub.open("ana", "ana's handle")
    # Committed while the read runs: 4 was also read, 5 and 6 were not.
    hub.route([public(4), public(5)])
    read = Recovery((EPOCH, 2), state(4), [public(3), public(4)], 10)
    session, items = hub.recover(session_id, read)
    assert (session.user, session.recovered, session.epoch) == ("ana", True, EPOCH)
    assert [(i.item.offset, i.replayed, tuple(i.handles)) for i in items] == [
        (3, True, ("ana's handle",)),
        (4, True, ("ana's handle",)),
        (5, False, ("ana's handle",)),
    ]
    hub.route([public(6)])  # while the replay is written
    assert [(i.item.offset, i.replayed) for i in hub.go_live(session_id)] == [(6, False)]
    assert list(hub.recipients(public(7))) == [bia, "ana's handle"]  # live from now on


def test_the_notice_comes_before_the_replay():
    hub = Hub()
    session_id = hub.open("ana", "h")
    _, items = hub.recover(session_id, Recovery(("outra", 1), state(2), [public(2)], 10))
    assert [type(i.item) for i in items] == [Notice, Message]
    assert items[0].item.kind is Kind.SYSTEM and items[1].replayed


def test_only_what_the_user_may_see_is_buffered():
    hub = Hub(max_buffer=2)
    session_id = hub.open("ana", "h")
    hub.route([private(n, "bia", "joao") for n in range(1, 10)])  # not for ana: no overflow
    hub.route([public(10), private(11, "bia", "ana")])
    _, items = hub.recover(session_id, Recovery(None, state(0), [], 10))
    assert [(i.item.offset, i.replayed) for i in items] == [(10, False), (11, False)]
    assert hub.go_live(session_id) == []


@pytest.mark.parametrize("when", ["before the recovery", "after the recovery"])
def test_a_buffer_that_overflows_closes_the_session_with_1013(when):
    hub = Hub(max_buffer=3)
    session_id = hub.open("ana", "h")
    if when == "after the recovery":
        hub.recover(session_id, Recovery(None, state(0), [], 10))
    hub.route([public(n) for n in range(1, 5)])  # one more than the buffer holds
    if when == "before the recovery":
        hub.recover(session_id, Recovery(None, state(0), [], 10))
    with pytest.raises(Refusal, match="reconecte e retome") as refused:
        hub.go_live(session_id)
    assert refused.value.close_code == CloseCode.TRY_AGAIN_LATER
    assert len(hub) == 0 and not hub.is_online("ana")
    assert hub.route([public(5)]) == []


def test_a_buffer_of_exactly_max_buffer_messages_goes_live():
    hub = Hub(max_buffer=3)
    session_id = hub.open("ana", "h")
    hub.recover(session_id, Recovery(None, state(0), [], 10))
    hub.route([public(n) for n in range(1, 4)])
    assert [i.item.offset for i in hub.go_live(session_id)] == [1, 2, 3]
