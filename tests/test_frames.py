"""Tests of the sans-I/O frame codec against RFC 6455 and the websockets library."""

from __future__ import annotations

import random
import struct

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from websockets.frames import Frame as WsFrame
from websockets.frames import Opcode as WsOpcode
from websockets.streams import StreamReader

from wslab.errors import WslabError
from wslab.protocol.frames import (
    Close,
    CloseCode,
    Frame,
    FrameDecoder,
    Message,
    MessageAssembler,
    NeedData,
    Opcode,
    ProtocolError,
    Rule,
    apply_mask,
    decode_frame,
    fragment,
    header_length,
    parse_header,
)

RFC_MASK = bytes([0x37, 0xFA, 0x21, 0x3D])

# RFC 6455 section 5.7, every example: (description, frames, mask, exact bytes).
RFC_EXAMPLES = [
    (
        "single-frame unmasked text",
        [Frame(Opcode.TEXT, b"Hello")],
        None,
        bytes([0x81, 0x05, 0x48, 0x65, 0x6C, 0x6C, 0x6F]),
    ),
    (
        "single-frame masked text",
        [Frame(Opcode.TEXT, b"Hello")],
        RFC_MASK,
        bytes([0x81, 0x85, 0x37, 0xFA, 0x21, 0x3D, 0x7F, 0x9F, 0x4D, 0x51, 0x58]),
    ),
    (
        "fragmented unmasked text",
        [Frame(Opcode.TEXT, b"Hel", fin=False), Frame(Opcode.CONT, b"lo")],
        None,
        bytes([0x01, 0x03, 0x48, 0x65, 0x6C]) + bytes([0x80, 0x02, 0x6C, 0x6F]),
    ),
    (
        "unmasked ping",
        [Frame(Opcode.PING, b"Hello")],
        None,
        bytes([0x89, 0x05, 0x48, 0x65, 0x6C, 0x6C, 0x6F]),
    ),
    (
        "masked pong",
        [Frame(Opcode.PONG, b"Hello")],
        RFC_MASK,
        bytes([0x8A, 0x85, 0x37, 0xFA, 0x21, 0x3D, 0x7F, 0x9F, 0x4D, 0x51, 0x58]),
    ),
    (
        "256 bytes binary, 16-bit length",
        [Frame(Opcode.BINARY, bytes(range(256)))],
        None,
        bytes([0x82, 0x7E, 0x01, 0x00]) + bytes(range(256)),
    ),
    (
        "64 KiB binary, 64-bit length",
        [Frame(Opcode.BINARY, b"\xab" * 65536)],
        None,
        bytes([0x82, 0x7F, 0, 0, 0, 0, 0, 1, 0, 0]) + b"\xab" * 65536,
    ),
]


@pytest.mark.parametrize(
    "frames, mask, wire", [e[1:] for e in RFC_EXAMPLES], ids=[e[0] for e in RFC_EXAMPLES]
)
def test_rfc_examples_encode_to_exact_bytes(frames, mask, wire):
    assert b"".join(f.encode(mask) for f in frames) == wire


@pytest.mark.parametrize(
    "frames, mask, wire", [e[1:] for e in RFC_EXAMPLES], ids=[e[0] for e in RFC_EXAMPLES]
)
def test_rfc_examples_decode_to_the_frames(frames, mask, wire):
    decoder = FrameDecoder(expect_masked=mask is not None)
    decoder.feed(wire)
    assert decoder.frames() == frames
    decoder.feed_eof()
    assert decoder.next_frame() is None


def test_rfc_fragmented_example_reassembles_into_hello():
    assembler = MessageAssembler()
    first, used = decode_frame(bytes([0x01, 0x03, 0x48, 0x65, 0x6C]))
    assert used == 5 and assembler.receive(first) is None
    second, _ = decode_frame(bytes([0x80, 0x02, 0x6C, 0x6F]))
    assert assembler.receive(second) == Message(Opcode.TEXT, b"Hello")


def test_header_fields_of_masked_example():
    header = parse_header(RFC_EXAMPLES[1][3])
    assert (header.fin, header.opcode, header.masked) == (True, 0x1, True)
    assert (header.payload_length, header.masking_key, header.header_length) == (5, RFC_MASK, 6)


@pytest.mark.parametrize(
    "size, masked, expected",
    [
        (0, False, 2),
        (125, False, 2),
        (126, False, 4),
        (65535, False, 4),
        (65536, False, 10),
        (125, True, 6),
        (126, True, 8),
        (65536, True, 14),
    ],
)
def test_header_length_matches_encoding(size, masked, expected):
    assert header_length(size, masked=masked) == expected
    wire = Frame(Opcode.BINARY, bytes(size)).encode(RFC_MASK if masked else None)
    assert len(wire) - size == expected


def test_mask_is_an_involution():
    data = bytes(range(256)) * 3 + b"xyz"
    assert apply_mask(apply_mask(data, RFC_MASK), RFC_MASK) == data
    assert apply_mask(b"Hello", RFC_MASK) == bytes([0x7F, 0x9F, 0x4D, 0x51, 0x58])


# -- cross-check against the websockets library ------------------------------------


def websockets_parse(wire: bytes, *, mask: bool) -> WsFrame:
    """Run websockets' generator-based parser over complete bytes."""
    reader = StreamReader()
    reader.feed_data(wire)
    reader.feed_eof()
    parser = WsFrame.parse(reader.read_exact, mask=mask)
    try:
        next(parser)
    except StopIteration as done:
        assert not reader.buffer, "websockets left bytes unread"
        return done.value
    raise AssertionError("websockets wanted more bytes than the frame holds")


sizes = st.one_of(
    st.integers(0, 130),
    st.integers(65530, 65540),
    st.sampled_from([125, 126, 127, 65535, 65536]),
)
data_opcodes = st.sampled_from([Opcode.CONT, Opcode.TEXT, Opcode.BINARY])
control_opcodes = st.sampled_from([Opcode.CLOSE, Opcode.PING, Opcode.PONG])
masks = st.one_of(st.none(), st.binary(min_size=4, max_size=4))


@st.composite
def frames(draw):
    """Random valid frames; payload bytes come from a seeded PRNG to keep generation fast."""
    if draw(st.booleans()):
        opcode, size, fin = draw(data_opcodes), draw(sizes), draw(st.booleans())
    else:
        opcode, size, fin = draw(control_opcodes), draw(st.integers(0, 125)), True
    payload = random.Random(draw(st.integers(0, 2**32))).randbytes(size)
    if opcode is Opcode.CLOSE and size:
        reason = draw(st.text(max_size=30).filter(lambda t: len(t.encode()) <= 123))
        payload = Close(draw(st.sampled_from([1000, 1001, 1011, 3000, 4999])), reason).encode()
    return Frame(opcode, payload, fin)


@given(frames(), masks)
def test_round_trip(frame, mask):
    wire = frame.encode(mask)
    assert len(wire) == header_length(len(frame.payload), masked=mask is not None) + len(
        frame.payload
    )
    decoded, used = decode_frame(wire + b"next", expect_masked=mask is not None)
    assert (decoded, used) == (frame, len(wire))


@given(frames(), masks)
def test_websockets_parses_what_we_write(frame, mask):
    theirs = websockets_parse(frame.encode(mask), mask=mask is not None)
    assert (theirs.opcode.value, theirs.fin, bytes(theirs.data)) == (
        frame.opcode.value,
        frame.fin,
        frame.payload,
    )
    assert (theirs.rsv1, theirs.rsv2, theirs.rsv3) == (False, False, False)


@given(frames(), st.booleans())
def test_we_parse_what_websockets_writes(frame, mask):
    theirs = WsFrame(WsOpcode(frame.opcode.value), frame.payload, frame.fin)
    ours, used = decode_frame(theirs.serialize(mask=mask), expect_masked=mask)
    assert (ours.opcode.value, ours.fin, ours.payload) == (
        theirs.opcode.value,
        theirs.fin,
        theirs.data,
    )
    assert (ours.rsv1, ours.rsv2, ours.rsv3) == (theirs.rsv1, theirs.rsv2, theirs.rsv3)


@given(frames(), masks, st.integers(1, 7))
def test_streaming_decoder_waits_for_chunks(frame, mask, chunk_count):
    wire = frame.encode(mask) * 2
    decoder = FrameDecoder(expect_masked=mask is not None)
    step = max(1, len(wire) // chunk_count)
    got = []
    for i in range(0, len(wire), step):
        decoder.feed(wire[i : i + step])
        got.extend(decoder.frames())
    assert got == [frame, frame]


@given(st.binary(max_size=300), st.integers(1, 50), st.booleans())
def test_fragment_and_reassemble(payload, size, text):
    if text:
        payload = payload.decode("latin-1").encode("utf-8")
    opcode = Opcode.TEXT if text else Opcode.BINARY
    parts = fragment(opcode, payload, size)
    assert all(len(p.payload) <= size for p in parts)
    assert [p.fin for p in parts] == [False] * (len(parts) - 1) + [True]
    assembler = MessageAssembler()
    results = [assembler.receive(decode_frame(p.encode(RFC_MASK))[0]) for p in parts]
    assert results[:-1] == [None] * (len(parts) - 1)
    assert results[-1] == Message(opcode, payload)


def test_control_frames_may_interleave_fragments():
    assembler = MessageAssembler()
    assert assembler.receive(Frame(Opcode.TEXT, b"Ol", fin=False)) is None
    ping = Frame(Opcode.PING, b"?")
    assert assembler.receive(ping) == ping
    assert assembler.receive(Frame(Opcode.CONT, "á".encode())).text == "Olá"


# -- close payload -----------------------------------------------------------------


def test_close_payload_round_trip():
    payload = Close(CloseCode.NORMAL_CLOSURE, "tchau, até já").encode()
    assert payload[:2] == b"\x03\xe8"
    assert Close.parse(payload) == Close(1000, "tchau, até já")


def test_empty_close_payload_means_no_status():
    assert Close.parse(b"") == Close(CloseCode.NO_STATUS_RCVD, "")


@given(st.integers(3000, 4999), st.text(max_size=40))
def test_close_agrees_with_websockets(code, reason):
    from websockets.frames import Close as WsClose

    assume(len(reason.encode()) <= 123)
    ours = Close(code, reason).encode()
    assert ours == WsClose(code, reason).serialize()
    assert Close.parse(ours) == Close(code, reason)


# -- each invalid-input rule -------------------------------------------------------


def expect_rule(rule: Rule, call, *args, **kwargs):
    with pytest.raises(ProtocolError) as info:
        call(*args, **kwargs)
    assert info.value.rule is rule
    assert rule.name in str(info.value)
    return info.value


@pytest.mark.parametrize("first_byte", [0xC1, 0xA1, 0x91])
def test_reserved_bits(first_byte):
    expect_rule(Rule.RESERVED_BITS, decode_frame, bytes([first_byte, 0x00]))


def test_reserved_bits_on_encode():
    expect_rule(Rule.RESERVED_BITS, Frame(Opcode.TEXT, b"x", rsv1=True).encode)


@pytest.mark.parametrize("opcode", [0x3, 0x7, 0xB, 0xF])
def test_unknown_opcode(opcode):
    error = expect_rule(Rule.UNKNOWN_OPCODE, decode_frame, bytes([0x80 | opcode, 0x00]))
    assert f"0x{opcode:X}" in str(error)


def test_unknown_opcode_on_encode():
    expect_rule(Rule.UNKNOWN_OPCODE, Frame(0x3, b"").encode)


def test_control_frame_too_long():
    expect_rule(Rule.CONTROL_TOO_LONG, Frame(Opcode.PING, bytes(126)).encode)
    wire = bytes([0x89, 0x7E]) + struct.pack("!H", 126) + bytes(126)
    expect_rule(Rule.CONTROL_TOO_LONG, decode_frame, wire)
    expect_rule(Rule.CONTROL_TOO_LONG, Close(1000, "x" * 124).encode)


def test_control_frame_fragmented():
    expect_rule(Rule.CONTROL_FRAGMENTED, Frame(Opcode.CLOSE, b"", fin=False).encode)
    expect_rule(Rule.CONTROL_FRAGMENTED, decode_frame, bytes([0x09, 0x00]))


def test_unmasked_frame_seen_by_server():
    wire = Frame(Opcode.TEXT, b"Hello").encode(None)
    expect_rule(Rule.UNMASKED_CLIENT_FRAME, decode_frame, wire, expect_masked=True)


def test_masked_frame_seen_by_client():
    wire = Frame(Opcode.TEXT, b"Hello").encode(RFC_MASK)
    expect_rule(Rule.MASKED_SERVER_FRAME, decode_frame, wire, expect_masked=False)


def test_invalid_utf8_in_text_message():
    assembler = MessageAssembler()
    expect_rule(Rule.INVALID_UTF8, assembler.receive, Frame(Opcode.TEXT, b"\xff"))
    # a split multibyte character is fine until the message ends without its tail
    assembler.receive(Frame(Opcode.TEXT, "á".encode()[:1], fin=False))
    expect_rule(Rule.INVALID_UTF8, assembler.receive, Frame(Opcode.CONT, b""))


def test_invalid_utf8_in_close_reason():
    expect_rule(Rule.INVALID_UTF8, Close.parse, b"\x03\xe8\xc3\x28")
    assembler = MessageAssembler()
    expect_rule(Rule.INVALID_UTF8, assembler.receive, Frame(Opcode.CLOSE, b"\x03\xe8\xff"))


def test_close_payload_of_one_byte():
    expect_rule(Rule.CLOSE_PAYLOAD_ONE_BYTE, Close.parse, b"\x03")


@pytest.mark.parametrize("code", [0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000])
def test_invalid_close_codes(code):
    expect_rule(Rule.INVALID_CLOSE_CODE, Close.parse, struct.pack("!H", code))


def test_continuation_rules():
    assembler = MessageAssembler()
    expect_rule(Rule.UNEXPECTED_CONTINUATION, assembler.receive, Frame(Opcode.CONT, b"x"))
    assembler.receive(Frame(Opcode.TEXT, b"x", fin=False))
    expect_rule(Rule.EXPECTED_CONTINUATION, assembler.receive, Frame(Opcode.BINARY, b"y"))


def test_length_over_configured_maximum_is_refused_before_payload_arrives():
    header_only = bytes([0x82, 0x7F]) + struct.pack("!Q", 10**9)
    expect_rule(Rule.PAYLOAD_TOO_BIG, decode_frame, header_only, max_size=2**20)
    assembler = MessageAssembler(max_message_size=4)
    assembler.receive(Frame(Opcode.BINARY, b"abc", fin=False))
    expect_rule(Rule.PAYLOAD_TOO_BIG, assembler.receive, Frame(Opcode.CONT, b"de"))


def test_non_minimal_and_high_bit_lengths():
    # the largest lengths that still fit the shorter encoding
    expect_rule(
        Rule.NON_MINIMAL_LENGTH,
        decode_frame,
        bytes([0x82, 0x7E]) + struct.pack("!H", 125) + bytes(125),
    )
    expect_rule(
        Rule.NON_MINIMAL_LENGTH,
        decode_frame,
        bytes([0x82, 0x7F]) + struct.pack("!Q", 65535) + bytes(65535),
    )
    expect_rule(Rule.LENGTH_HIGH_BIT, decode_frame, bytes([0x82, 0x7F]) + struct.pack("!Q", 2**63))


def test_mask_key_must_be_four_bytes():
    expect_rule(Rule.INVALID_MASK, Frame(Opcode.TEXT, b"x").encode, b"abc")


@pytest.mark.parametrize("cut", [0, 1, 3, 5, 6, 10])
def test_truncated_input_needs_data_and_is_not_an_error(cut):
    wire = Frame(Opcode.BINARY, bytes(200)).encode(RFC_MASK)  # 2 + 2 + 4 + 200 bytes
    need = decode_frame(wire[:cut])
    assert isinstance(need, NeedData)
    assert cut < need.needed <= len(wire)
    # ``needed`` is honest: with that many bytes the decoder finishes or asks for more
    again = decode_frame(wire[: need.needed])
    if need.needed == len(wire):
        assert again[1] == len(wire)
    else:
        assert isinstance(again, NeedData) and again.needed > need.needed


def test_streaming_decoder_raises_on_truncated_stream_end():
    decoder = FrameDecoder()
    decoder.feed(Frame(Opcode.TEXT, b"Hello").encode()[:4])
    assert decoder.next_frame() is None  # still waiting: not an error yet
    decoder.feed_eof()
    with pytest.raises(ProtocolError) as info:
        decoder.next_frame()
    assert info.value.rule is Rule.TRUNCATED and info.value.close_code is None


def test_errors_carry_the_close_code_to_send():
    def close_code_of(call, *args):
        with pytest.raises(ProtocolError) as info:
            call(*args)
        assert isinstance(info.value, WslabError) and not isinstance(info.value, ValueError)
        return info.value.close_code

    assert close_code_of(decode_frame, bytes([0xC1, 0x00])) == CloseCode.PROTOCOL_ERROR
    too_big = bytes([0x81, 0x7E, 0x01, 0x00])
    assert close_code_of(lambda: decode_frame(too_big, max_size=10)) == CloseCode.MESSAGE_TOO_BIG
    assert close_code_of(MessageAssembler().receive, Frame(Opcode.TEXT, b"\xff")) == (
        CloseCode.INVALID_DATA
    )
