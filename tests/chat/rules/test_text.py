"""The one rule for what a chat line may contain (wslab.chat.rules.text), and where it applies."""

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wslab.chat.rules.commands import CommandError, PublicText, parse_line
from wslab.chat.rules.text import checked_text


@pytest.mark.parametrize(
    "text, words",
    [
        ("oi\ud800", "surrogate"),
        ("linha um\nlinha dois", "controle U+000A"),
        ("oi\r[admin] ana: fake", "controle U+000D"),
        ("cor\x1b[31m", "controle U+001B"),
        ("sino\x07", "controle U+0007"),
        ("c1\x85c1", "controle U+0085"),
        ("abc\u202egnp.exe", "U+202E"),
        ("\u2066isolado\u2069", "U+2066"),
        ("\u200b\u200b\u200b", "visível"),
        ("\u3164\u115f", "visível"),
        ("\ufeff \u2060", "visível"),
    ],
)
def test_text_that_renders_as_something_it_is_not_is_refused(text, words):
    with pytest.raises(ValueError, match=re.escape(words)):
        checked_text(text)
    with pytest.raises(CommandError, match=re.escape(words)):
        parse_line(text)
    with pytest.raises(CommandError, match=re.escape(words)):
        parse_line(f"/msg ana {text}")


@pytest.mark.parametrize(
    "text",
    ["oi", "olá, mundo!", "família: 👨\u200d👩\u200d👧", "❤\ufe0f", "مرحبا", "a\u00a0b", "a\tb"],
)
def test_ordinary_text_in_any_script_passes_unchanged(text):
    assert checked_text(text) == text
    assert parse_line(text) == PublicText(text)


@given(st.text(alphabet=st.characters(codec="utf-8", categories=["L", "N", "P", "S"]), min_size=1))
def test_letters_numbers_punctuation_and_symbols_always_pass(text):
    assert checked_text(text) == text
