"""What a typed line means (wslab.chat.rules.commands): a public text, ``/msg``, ``/who``."""

import pytest

from wslab.chat.rules.commands import CommandError, PrivateText, PublicText, WhoQuery, parse_line


def test_parse_line_commands():
    assert parse_line(" oi ") == PublicText("oi")
    assert parse_line("/msg\tjoao\toi  tudo bem") == PrivateText("joao", "oi  tudo bem")
    assert parse_line("/msg Joao  oi  você ") == PrivateText("joao", "oi  você")
    assert parse_line("/who") == WhoQuery()
    with pytest.raises(CommandError):
        parse_line("/nope")
    with pytest.raises(TypeError):
        parse_line(None)
