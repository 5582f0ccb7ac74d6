"""The chat's wire protocol: each frame shape, each bad input, and encodings that round-trip."""

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wslab.chat import Kind, Message, Notice, Session
from wslab.chat.errors import CloseCode
from wslab.chat.rules.wire import (
    BadHello,
    BadMessage,
    Hello,
    Say,
    encode_error,
    encode_item,
    encode_welcome,
    parse_hello,
    parse_message,
)


def test_hello_without_resume():
    frame = json.dumps({"type": "hello", "user": "ana", "secret": "s", "resume": None})
    assert parse_hello(frame) == Hello("ana", "s", None)


def test_hello_with_resume_omitted_is_a_fresh_start():
    assert parse_hello('{"type": "hello", "user": "ana", "secret": "s"}').resume is None


def test_hello_with_resume():
    frame = json.dumps(
        {"type": "hello", "user": "ana", "secret": "s", "resume": {"epoch": "e1", "offset": 7}}
    )
    assert parse_hello(frame) == Hello("ana", "s", ("e1", 7))


@pytest.mark.parametrize(
    "frame",
    [
        b'{"type": "hello", "user": "ana", "secret": "s"}',  # binary frame
        "{not json",
        '["hello", "ana", "s"]',
        '{"type": "say", "text": "oi"}',
        '{"user": "ana", "secret": "s"}',
        '{"type": "hello", "secret": "s"}',
        '{"type": "hello", "user": "ana"}',
        '{"type": "hello", "user": 7, "secret": "s"}',
        '{"type": "hello", "user": "ana", "secret": null}',
        '{"type": "hello", "user": "ana", "secret": "s", "resume": 7}',
        '{"type": "hello", "user": "ana", "secret": "s", "resume": {"offset": 1}}',
        '{"type": "hello", "user": "ana", "secret": "s", "resume": {"epoch": "e"}}',
        '{"type": "hello", "user": "ana", "secret": "s", "resume": {"epoch": "e", "offset": -1}}',
        '{"type": "hello", "user": "ana", "secret": "s", "resume": {"epoch": "e", "offset": true}}',
        '{"type": "hello", "user": "ana", "secret": "s", "resume": {"epoch": "e", "offset": 1.5}}',
        '{"type": "hello", "user": "ana", "secret": "s", "resume": {"epoch": 1, "offset": 1}}',
    ],
)
def test_an_invalid_hello_is_refused_with_4000(frame):
    with pytest.raises(BadHello) as caught:
        parse_hello(frame)
    assert caught.value.close_code == CloseCode.BAD_HELLO == 4000
    assert str(caught.value)  # a sentence for the close reason


def test_say():
    assert parse_message('{"type": "say", "text": "/msg joao oi"}') == Say("/msg joao oi")


@pytest.mark.parametrize(
    "frame, words",
    [
        (b'{"type": "say", "text": "oi"}', "binário"),
        ("oi", "JSON inválido"),
        ("[1, 2]", "JSON inválido"),
        ('{"type": "shout", "text": "oi"}', "desconhecido"),
        ('{"text": "oi"}', "desconhecido"),
        ('{"type": "say"}', "text"),
        ('{"type": "say", "text": 42}', "text"),
    ],
)
def test_a_bad_frame_after_hello_is_named(frame, words):
    with pytest.raises(BadMessage, match=words):
        parse_message(frame)


def test_welcome_frame():
    frame = encode_welcome(Session("s3", "ana", True, "e1"))
    assert json.loads(frame) == {
        "type": "welcome",
        "session": "s3",
        "user": "ana",
        "epoch": "e1",
        "recovered": True,
    }


def test_public_and_private_message_frames():
    public = json.loads(encode_item(Message(Kind.PUBLIC, 4, "ana", None, "oi")))
    assert public == {
        "type": "message",
        "offset": 4,
        "kind": "public",
        "from": "ana",
        "to": None,
        "text": "oi",
        "replayed": False,
    }
    private = Message(Kind.PRIVATE, 5, "joao", "ana", "só pra você")
    frame = encode_item(private, replayed=True)
    assert "só pra você" in frame  # UTF-8 text, not \u escapes
    assert json.loads(frame) == {
        "type": "message",
        "offset": 5,
        "kind": "private",
        "from": "joao",
        "to": "ana",
        "text": "só pra você",
        "replayed": True,
    }


def test_notices_become_system_and_error_frames():
    system = Notice(Kind.SYSTEM, "Online agora: ana.")
    error = Notice(Kind.ERROR, "Comando desconhecido: /x.")
    assert json.loads(encode_item(system)) == {"type": "system", "text": "Online agora: ana."}
    assert json.loads(encode_item(error)) == {
        "type": "error",
        "text": "Comando desconhecido: /x.",
    }
    assert json.loads(encode_error("x")) == {"type": "error", "text": "x"}


@given(text=st.text(max_size=300), offset=st.integers(1, 2**53), replayed=st.booleans())
def test_any_text_round_trips_through_a_message_frame(text, offset, replayed):
    frame = encode_item(Message(Kind.PUBLIC, offset, "ana", None, text), replayed=replayed)
    decoded = json.loads(frame)
    assert (decoded["text"], decoded["offset"], decoded["replayed"]) == (text, offset, replayed)


@given(user=st.text(max_size=40), secret=st.text(max_size=40), offset=st.integers(0, 2**53))
def test_any_hello_round_trips(user, secret, offset):
    frame = json.dumps(
        {
            "type": "hello",
            "user": user,
            "secret": secret,
            "resume": {"epoch": "e", "offset": offset},
        }
    )
    assert parse_hello(frame) == Hello(user, secret, ("e", offset))


@pytest.mark.parametrize(
    "frame, words",
    [
        ('{"type": "hello", "user": "ana", "secret": "\\ud800"}', "UTF-8"),
        (
            '{"type": "hello", "user": "ana", "secret": "s", "resume": '
            '{"epoch": "\\udfff", "offset": 1}}',
            "resume deve ser",
        ),
    ],
)
def test_a_hello_with_a_lone_surrogate_is_refused(frame, words):
    with pytest.raises(BadHello, match=words):
        parse_hello(frame)


def test_a_say_with_a_lone_surrogate_never_reaches_the_router():
    with pytest.raises(BadMessage, match="UTF-8"):
        parse_message('{"type": "say", "text": "oi \\ud83d"}')
    # A surrogate pair is one real character (an emoji) and passes.
    assert parse_message('{"type": "say", "text": "\\ud83d\\ude00"}').text == "😀"


@pytest.mark.parametrize("parse, error", [(parse_hello, BadHello), (parse_message, BadMessage)])
def test_json_nested_thousands_deep_is_just_invalid_json(parse, error):
    with pytest.raises(error, match="JSON inválido"):
        parse("[" * 8100 + "]" * 8100)


def test_a_say_may_carry_the_lines_id():
    frame = '{"type": "say", "text": "oi", "id": "a-Z_09"}'
    assert parse_message(frame) == Say("oi", "a-Z_09")
    assert parse_message(json.dumps({"type": "say", "text": "oi", "id": "x" * 64})).id == "x" * 64


@pytest.mark.parametrize("said_id", ["", "x" * 65, "a b", "a:b", "ação", 7, True, ["a"], {}])
def test_a_say_with_an_id_that_is_not_one_is_refused(said_id):
    with pytest.raises(BadMessage, match='"id"'):
        parse_message(json.dumps({"type": "say", "text": "oi", "id": said_id}))


def test_every_frame_answering_a_line_carries_its_id():
    message = Message(Kind.PRIVATE, 9, "ana", "joao", "oi", "k1")
    assert json.loads(encode_item(message))["id"] == "k1"
    assert json.loads(encode_item(message, replayed=True))["id"] == "k1"
    for kind, kind_name in ((Kind.ERROR, "error"), (Kind.SYSTEM, "system")):
        frame = json.loads(encode_item(Notice(kind, "x", "k2")))
        assert frame == {"type": kind_name, "text": "x", "id": "k2"}
