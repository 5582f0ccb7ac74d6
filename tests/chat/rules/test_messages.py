"""What the chat keeps and hands out (wslab.chat.rules.messages): the one statement of
who may see a message, and objects that can go to many sessions at once."""

import dataclasses
import json

import pytest

from wslab.chat.rules.messages import Kind, LogState, Message, Notice


@pytest.mark.parametrize(
    ("message", "sees"),
    [
        (Message(Kind.PUBLIC, 1, "ana", None, "oi"), {"ana", "bia", "joao"}),
        (Message(Kind.PRIVATE, 2, "ana", "bia", "psiu"), {"ana", "bia"}),
        (Message(Kind.PRIVATE, 3, "ana", "ana", "nota"), {"ana"}),
    ],
)
def test_a_public_message_is_for_everyone_and_a_private_one_for_its_two_ends(message, sees):
    assert {u for u in ("ana", "bia", "joao") if message.visible_to(u)} == sees


def test_messages_and_notices_are_frozen_and_their_kind_is_plain_text():
    message, notice = Message(Kind.PUBLIC, 1, "ana", None, "oi"), Notice(Kind.SYSTEM, "aviso")
    for item in (message, notice):
        with pytest.raises(dataclasses.FrozenInstanceError):
            item.kind = Kind.ERROR
    assert json.dumps([Kind.PUBLIC, Kind.ERROR]) == '["public", "error"]'
    assert not hasattr(notice, "offset")  # a notice is never kept: it has no offset


def test_a_log_state_reads_as_epoch_newest_oldest():
    epoch, newest, oldest = LogState("e", 5, 6)
    assert (epoch, newest, oldest) == ("e", 5, 6)  # nothing kept: oldest is newest + 1
