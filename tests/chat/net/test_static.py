"""The browser client's copies of the protocol's constants equal the server's."""

import re
from importlib import resources

from wslab.chat.errors import CloseCode
from wslab.chat.rules.commands import MAX_TEXT_LENGTH
from wslab.chat.rules.names import MAX_NAME_LENGTH
from wslab.chat.rules.wire import MAX_FRAME_BYTES, MAX_HISTORY, RESEND_SECONDS

APP = resources.files("wslab.chat.net").joinpath("static/app.js").read_text()


def _const(name):
    return re.search(rf"const {name} = ([^;]+);", APP).group(1).split("//")[0].strip()


def test_text_frame_and_history_limits_match():
    assert int(_const("MAX_TEXT_LENGTH")) == MAX_TEXT_LENGTH
    assert eval(_const("MAX_FRAME_BYTES")) == MAX_FRAME_BYTES  # "16 * 1024"
    assert 0 < int(_const("HISTORY")) <= MAX_HISTORY


def test_the_page_sends_a_line_again_only_while_the_server_knows_its_id():
    assert 0 < eval(_const("RESEND_MS")) < RESEND_SECONDS * 1000  # "240 * 1000"


def test_the_name_rule_matches():
    """The page's first look at a name: letters, marks, digits and _ . -, starting with
    no mark, up to the server's length (the server enforces PRECIS on top)."""
    pattern = rf"/^[\p{{L}}\p{{Nd}}_.-][\p{{L}}\p{{M}}\p{{Nd}}_.-]{{0,{MAX_NAME_LENGTH - 1}}}$/u"
    assert _const("NAME_PATTERN") == pattern


def test_every_application_close_code_has_the_same_name_and_number():
    block = re.search(r"const CloseCode = Object.freeze\(\{(.*?)\}\);", APP, re.S).group(1)
    codes = dict(re.findall(r"(\w+): (\d+)", block))
    for code in CloseCode:
        assert int(codes[code.name]) == code.value, code
