"""Sans-I/O WebSocket frame codec (RFC 6455, section 5).

Bytes in, frames out; frames in, bytes out. No sockets, clocks or threads, so the
same code serves the notebooks, the adapters and the tests.

Errors (see :mod:`wslab.protocol.errors`):
    ``ProtocolError`` means the bytes break a rule of RFC 6455; its ``rule`` (a
    ``Rule``) names which one and its ``close_code`` is the code to close with.
    "Need more bytes" is not an error: ``parse_header`` and ``decode_frame`` return
    ``NeedData`` on a truncated buffer; the streaming ``FrameDecoder`` returns None
    for it and raises ``ProtocolError(TRUNCATED)`` only at end of stream, when a
    truncated frame can no longer be completed.
"""

from __future__ import annotations

import codecs
import dataclasses
import enum
import os
import struct

from .errors import NeedData, ProtocolError

__all__ = [
    "Opcode",
    "CloseCode",
    "Rule",
    "ProtocolError",
    "NeedData",
    "Frame",
    "FrameHeader",
    "Close",
    "Message",
    "apply_mask",
    "parse_header",
    "decode_frame",
    "FrameDecoder",
    "MessageAssembler",
    "fragment",
    "header_length",
    "new_mask",
]


class Opcode(enum.IntEnum):
    """Opcode values of RFC 6455, section 5.2."""

    CONT = 0x0
    TEXT = 0x1
    BINARY = 0x2
    CLOSE = 0x8
    PING = 0x9
    PONG = 0xA

    @property
    def is_control(self) -> bool:
        """Control opcodes have the high bit of the 4-bit opcode set (0x8-0xF)."""
        return self >= 0x8


class CloseCode(enum.IntEnum):
    """Close codes of RFC 6455, section 7.4.1, plus the later IANA registrations."""

    NORMAL_CLOSURE = 1000
    GOING_AWAY = 1001
    PROTOCOL_ERROR = 1002
    UNSUPPORTED_DATA = 1003
    NO_STATUS_RCVD = 1005  # never on the wire: "the close frame had no code"
    ABNORMAL_CLOSURE = 1006  # never on the wire: "the TCP connection just dropped"
    INVALID_DATA = 1007
    POLICY_VIOLATION = 1008
    MESSAGE_TOO_BIG = 1009
    MANDATORY_EXTENSION = 1010
    INTERNAL_ERROR = 1011
    SERVICE_RESTART = 1012
    TRY_AGAIN_LATER = 1013
    BAD_GATEWAY = 1014
    TLS_HANDSHAKE = 1015  # never on the wire


# Codes below 3000 that may appear in a close frame (1004-1006 and 1015 may not).
_WIRE_CLOSE_CODES = frozenset(CloseCode) - {
    CloseCode.NO_STATUS_RCVD,
    CloseCode.ABNORMAL_CLOSURE,
    CloseCode.TLS_HANDSHAKE,
}


class Rule(enum.Enum):
    """The rule of RFC 6455 that a ``ProtocolError`` reports as broken."""

    RESERVED_BITS = "RSV1, RSV2 and RSV3 must be 0 without a negotiated extension (5.2)"
    UNKNOWN_OPCODE = "the opcode must be one of 0x0, 0x1, 0x2, 0x8, 0x9, 0xA (5.2)"
    CONTROL_TOO_LONG = "a control frame payload must be 125 bytes or less (5.5)"
    CONTROL_FRAGMENTED = "a control frame must not be fragmented (FIN must be 1) (5.5)"
    UNMASKED_CLIENT_FRAME = (
        "a server must close on a frame from the client that is not masked (5.1)"
    )
    MASKED_SERVER_FRAME = "a client must close on a frame from the server that is masked (5.1)"
    NON_MINIMAL_LENGTH = "the payload length must use the minimal number of bytes (5.2)"
    LENGTH_HIGH_BIT = "the most significant bit of a 64-bit length must be 0 (5.2)"
    PAYLOAD_TOO_BIG = "the payload is longer than the configured maximum (10.4)"
    INVALID_UTF8 = "text messages and close reasons must be valid UTF-8 (5.6, 8.1)"
    CLOSE_PAYLOAD_ONE_BYTE = "a close payload is empty or starts with a 2-byte code (5.5.1)"
    INVALID_CLOSE_CODE = "this close code may not be sent in a close frame (7.4)"
    UNEXPECTED_CONTINUATION = "a continuation frame must follow a non-final data frame (5.4)"
    EXPECTED_CONTINUATION = "a fragmented message must continue with opcode 0x0 (5.4)"
    INVALID_MASK = "a masking key is exactly 4 bytes (5.3)"
    TRUNCATED = "the stream ended inside a frame (5.2)"

    @property
    def close_code(self) -> CloseCode | None:
        """The close code an endpoint sends for this rule (7.4.1); None when it sends none."""
        if self is Rule.INVALID_UTF8:
            return CloseCode.INVALID_DATA
        if self is Rule.PAYLOAD_TOO_BIG:
            return CloseCode.MESSAGE_TOO_BIG
        if self is Rule.TRUNCATED:
            return None  # the peer is gone: there is nobody to send a close frame to
        return CloseCode.PROTOCOL_ERROR


def _check_head(fin: bool, rsv: tuple[bool, bool, bool], opcode: int, length: int) -> Opcode:
    """The rules one frame obeys on its own, whether built (``Frame.check``) or read
    (``parse_header``); ``length`` is the payload length, or the 7-bit length field,
    which exceeds 125 exactly when the length does. Returns the ``Opcode``.

    Raises:
        ProtocolError(RESERVED_BITS, UNKNOWN_OPCODE, CONTROL_TOO_LONG or
            CONTROL_FRAGMENTED).
    """
    if any(rsv):
        bits = [name for name, bit in zip(("rsv1", "rsv2", "rsv3"), rsv, strict=True) if bit]
        raise ProtocolError(Rule.RESERVED_BITS, "set: " + ", ".join(bits))
    try:
        checked = Opcode(opcode)
    except ValueError:
        shown = f"0x{opcode:X}" if isinstance(opcode, int) else repr(opcode)
        raise ProtocolError(Rule.UNKNOWN_OPCODE, f"got {shown}") from None
    if checked.is_control:
        if not fin:
            raise ProtocolError(Rule.CONTROL_FRAGMENTED, checked.name)
        if length > 125:
            raise ProtocolError(Rule.CONTROL_TOO_LONG, f"{checked.name} is over 125 bytes")
    return checked


def apply_mask(data: bytes, key: bytes) -> bytes:
    """XOR ``data`` with the 4-byte ``key`` repeated (5.3); masking and unmasking are the same.

    Raises:
        ProtocolError(INVALID_MASK): if ``key`` is not 4 bytes long.
    """
    if len(key) != 4:
        raise ProtocolError(Rule.INVALID_MASK, f"got {len(key)} bytes")
    n = len(data)
    if n == 0:
        return b""
    # One big-integer XOR is much faster in CPython than a per-byte loop.
    stream = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(data, "big") ^ int.from_bytes(stream, "big")).to_bytes(n, "big")


def header_length(payload_length: int, *, masked: bool) -> int:
    """Bytes of frame header for a payload of that size: 2, 4 or 10, plus 4 if masked."""
    if payload_length < 0:
        raise ValueError("payload length cannot be negative")
    if payload_length <= 125:
        size = 2
    elif payload_length <= 0xFFFF:
        size = 4
    else:
        size = 10
    return size + (4 if masked else 0)


@dataclasses.dataclass(frozen=True)
class Frame:
    """One WebSocket frame: what it carries, not how it is laid out on the wire.

    The MASK bit, the length encoding and the masking key are chosen by ``encode``
    and read by ``decode_frame``; ``payload`` is always the unmasked data.
    """

    opcode: Opcode
    payload: bytes = b""
    fin: bool = True
    rsv1: bool = False
    rsv2: bool = False
    rsv3: bool = False

    def check(self) -> None:
        """Check the rules a frame obeys on its own (reserved bits, control frames).

        Raises:
            ProtocolError(RESERVED_BITS, UNKNOWN_OPCODE, CONTROL_TOO_LONG or
                CONTROL_FRAGMENTED).
        """
        rsv = (self.rsv1, self.rsv2, self.rsv3)
        _check_head(self.fin, rsv, self.opcode, len(self.payload))

    def encode(self, mask: bytes | None = None) -> bytes:
        """Serialize the frame; ``mask`` is the 4-byte key (clients) or None (servers).

        A real client draws a fresh key from ``os.urandom(4)`` for every frame
        (``Frame.encode(mask=new_mask())``); a fixed key is accepted so examples
        and tests are reproducible.

        Raises:
            ProtocolError: if the frame breaks a rule of ``check`` or the key is not 4 bytes.
        """
        self.check()
        head1 = (
            (0x80 if self.fin else 0)
            | (0x40 if self.rsv1 else 0)
            | (0x20 if self.rsv2 else 0)
            | (0x10 if self.rsv3 else 0)
            | Opcode(self.opcode)
        )
        mask_bit = 0x80 if mask is not None else 0
        n = len(self.payload)
        if n <= 125:
            header = struct.pack("!BB", head1, mask_bit | n)
        elif n <= 0xFFFF:
            header = struct.pack("!BBH", head1, mask_bit | 126, n)
        else:
            header = struct.pack("!BBQ", head1, mask_bit | 127, n)
        if mask is None:
            return header + bytes(self.payload)
        return header + bytes(mask) + apply_mask(bytes(self.payload), bytes(mask))


def new_mask() -> bytes:
    """A fresh, unpredictable masking key, as RFC 6455 section 5.3 requires of clients."""
    return os.urandom(4)


@dataclasses.dataclass(frozen=True)
class FrameHeader:
    """The header fields of a frame as laid out on the wire (for teaching and decoding)."""

    fin: bool
    rsv1: bool
    rsv2: bool
    rsv3: bool
    opcode: int  # raw 4-bit value, checked by parse_header
    masked: bool
    length_code: int  # the 7-bit field: the length itself, or 126 / 127
    payload_length: int
    masking_key: bytes | None
    header_length: int  # bytes before the payload: 2, 4 or 10, plus 4 if masked


def parse_header(
    data: bytes | bytearray,
    *,
    expect_masked: bool | None = None,
    max_size: int | None = None,
) -> FrameHeader | NeedData:
    """Read the header at the start of ``data``, or return ``NeedData`` if it ends inside it.

    ``expect_masked`` is True when reading as a server (client frames must be
    masked), False when reading as a client (server frames must not be), None to
    accept both. ``max_size`` bounds the payload length; it is checked as soon as
    the length is known, before waiting for the payload.

    Raises:
        ProtocolError(RESERVED_BITS, UNKNOWN_OPCODE, CONTROL_TOO_LONG,
            CONTROL_FRAGMENTED, UNMASKED_CLIENT_FRAME, MASKED_SERVER_FRAME,
            NON_MINIMAL_LENGTH, LENGTH_HIGH_BIT or PAYLOAD_TOO_BIG).
    """
    if len(data) < 2:
        return NeedData(2)
    head1, head2 = data[0], data[1]
    fin, rsv1, rsv2, rsv3 = (bool(head1 & bit) for bit in (0x80, 0x40, 0x20, 0x10))
    raw_opcode = head1 & 0x0F
    masked = bool(head2 & 0x80)
    length_code = head2 & 0x7F

    opcode = _check_head(fin, (rsv1, rsv2, rsv3), raw_opcode, length_code)
    if expect_masked is True and not masked:
        raise ProtocolError(Rule.UNMASKED_CLIENT_FRAME, opcode.name)
    if expect_masked is False and masked:
        raise ProtocolError(Rule.MASKED_SERVER_FRAME, opcode.name)

    offset = 2
    if length_code == 126:
        if len(data) < 4:
            return NeedData(4)
        (length,) = struct.unpack_from("!H", data, 2)
        offset = 4
        if length <= 125:
            raise ProtocolError(Rule.NON_MINIMAL_LENGTH, f"{length} in 16 bits")
    elif length_code == 127:
        if len(data) < 10:
            return NeedData(10)
        (length,) = struct.unpack_from("!Q", data, 2)
        offset = 10
        if length >> 63:
            raise ProtocolError(Rule.LENGTH_HIGH_BIT)
        if length <= 0xFFFF:
            raise ProtocolError(Rule.NON_MINIMAL_LENGTH, f"{length} in 64 bits")
    else:
        length = length_code

    if max_size is not None and length > max_size:
        raise ProtocolError(
            Rule.PAYLOAD_TOO_BIG, f"{length} bytes announced, maximum is {max_size}"
        )

    key = None
    if masked:
        if len(data) < offset + 4:
            return NeedData(offset + 4)
        key = bytes(data[offset : offset + 4])
        offset += 4

    return FrameHeader(fin, rsv1, rsv2, rsv3, raw_opcode, masked, length_code, length, key, offset)


def decode_frame(
    data: bytes | bytearray,
    *,
    expect_masked: bool | None = None,
    max_size: int | None = None,
) -> tuple[Frame, int] | NeedData:
    """Decode one frame at the start of ``data``; return it and the bytes it used.

    Bytes after the frame are left to the caller (they begin the next frame).
    Returns ``NeedData`` if ``data`` ends before the frame does.

    Raises:
        ProtocolError: as ``parse_header``.
    """
    header = parse_header(data, expect_masked=expect_masked, max_size=max_size)
    if isinstance(header, NeedData):
        return header
    end = header.header_length + header.payload_length
    if len(data) < end:
        return NeedData(end)
    payload = bytes(data[header.header_length : end])
    if header.masking_key is not None:
        payload = apply_mask(payload, header.masking_key)
    frame = Frame(Opcode(header.opcode), payload, header.fin)
    return frame, end


class FrameDecoder:
    """Streaming decoder: feed bytes as they arrive, take whole frames out.

    ``next_frame`` returns None while a frame is still incomplete, so a reader can
    simply wait for more bytes; ``feed_eof`` tells it the stream ended, after which
    leftover bytes are a truncated frame and raise ``ProtocolError(TRUNCATED)``.
    """

    def __init__(self, *, expect_masked: bool | None = None, max_size: int | None = None):
        self.expect_masked = expect_masked
        self.max_size = max_size
        self._buffer = bytearray()
        self._eof = False

    def feed(self, data: bytes) -> None:
        """Append received bytes."""
        if self._eof:
            raise ValueError("cannot feed data after feed_eof()")
        self._buffer += data

    def feed_eof(self) -> None:
        """Mark the end of the stream."""
        self._eof = True

    def next_frame(self) -> Frame | None:
        """The next whole frame, or None if more bytes are needed.

        Raises:
            ProtocolError(TRUNCATED): if the stream ended in the middle of a frame.
            ProtocolError: as ``parse_header``.
        """
        decoded = decode_frame(
            self._buffer, expect_masked=self.expect_masked, max_size=self.max_size
        )
        if isinstance(decoded, NeedData):
            if self._eof and self._buffer:
                raise ProtocolError(
                    Rule.TRUNCATED, f"{len(self._buffer)} bytes left, {decoded.needed} needed"
                )
            return None
        frame, used = decoded
        del self._buffer[:used]
        return frame

    def frames(self) -> list[Frame]:
        """All whole frames currently buffered (possibly none)."""
        out = []
        while (frame := self.next_frame()) is not None:
            out.append(frame)
        return out


@dataclasses.dataclass(frozen=True)
class Close:
    """Code and UTF-8 reason carried by a close frame (5.5.1)."""

    code: int
    reason: str = ""

    def check(self) -> None:
        """Check the code may travel in a close frame and the reason fits.

        Raises:
            ProtocolError(INVALID_CLOSE_CODE or CONTROL_TOO_LONG).
        """
        if not (self.code in _WIRE_CLOSE_CODES or 3000 <= self.code <= 4999):
            raise ProtocolError(Rule.INVALID_CLOSE_CODE, f"code {self.code}")
        size = 2 + len(self.reason.encode("utf-8"))
        if size > 125:
            raise ProtocolError(Rule.CONTROL_TOO_LONG, f"close payload of {size} bytes")

    def encode(self) -> bytes:
        """The close frame payload: 2-byte big-endian code, then the UTF-8 reason."""
        self.check()
        return struct.pack("!H", self.code) + self.reason.encode("utf-8")

    @classmethod
    def parse(cls, payload: bytes) -> Close:
        """Read a close payload; an empty one means "no code" (1005, NO_STATUS_RCVD).

        Raises:
            ProtocolError(CLOSE_PAYLOAD_ONE_BYTE, INVALID_CLOSE_CODE or INVALID_UTF8).
        """
        if len(payload) == 0:
            return cls(CloseCode.NO_STATUS_RCVD, "")
        if len(payload) == 1:
            raise ProtocolError(Rule.CLOSE_PAYLOAD_ONE_BYTE)
        (code,) = struct.unpack_from("!H", payload)
        try:
            reason = bytes(payload[2:]).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ProtocolError(Rule.INVALID_UTF8, f"close reason: {exc.reason}") from None
        close = cls(code, reason)
        close.check()
        return close


@dataclasses.dataclass(frozen=True)
class Message:
    """A whole data message (text or binary) rebuilt from one or more frames."""

    opcode: Opcode  # TEXT or BINARY
    data: bytes

    @property
    def text(self) -> str:
        """The message as text (valid UTF-8 is already guaranteed for TEXT)."""
        return self.data.decode("utf-8")


def fragment(opcode: Opcode, payload: bytes, size: int) -> list[Frame]:
    """Split one data message into frames of at most ``size`` payload bytes (5.4).

    The first frame carries the opcode, the rest are CONT; only the last has FIN.
    """
    if Opcode(opcode) not in (Opcode.TEXT, Opcode.BINARY):
        raise ValueError("only TEXT and BINARY messages can be fragmented")
    if size < 1:
        raise ValueError("fragment size must be at least 1 byte")
    chunks = [payload[i : i + size] for i in range(0, len(payload), size)] or [b""]
    last = len(chunks) - 1
    return [
        Frame(opcode if i == 0 else Opcode.CONT, chunk, fin=(i == last))
        for i, chunk in enumerate(chunks)
    ]


class MessageAssembler:
    """Rebuild messages from frames, enforcing the fragmentation rules of 5.4.

    ``receive`` returns a ``Message`` when a data message completes, the frame
    itself for control frames (they may arrive between fragments), or None while
    a fragmented message is still open. Text is validated incrementally, so
    invalid UTF-8 is reported at the first fragment that proves it.
    """

    def __init__(self, *, max_message_size: int | None = None) -> None:
        self.max_message_size = max_message_size
        self._opcode: Opcode | None = None
        self._parts: list[bytes] = []
        self._size = 0
        self._utf8 = codecs.getincrementaldecoder("utf-8")()

    def receive(self, frame: Frame) -> Message | Frame | None:
        """Take one decoded frame.

        Raises:
            ProtocolError(UNEXPECTED_CONTINUATION, EXPECTED_CONTINUATION,
                INVALID_UTF8, PAYLOAD_TOO_BIG), or as ``Frame.check`` / ``Close.parse``.
        """
        frame.check()
        opcode = Opcode(frame.opcode)
        if opcode.is_control:
            if opcode is Opcode.CLOSE:
                Close.parse(frame.payload)
            return frame
        if opcode is Opcode.CONT:
            if self._opcode is None:
                raise ProtocolError(Rule.UNEXPECTED_CONTINUATION)
        else:
            if self._opcode is not None:
                raise ProtocolError(
                    Rule.EXPECTED_CONTINUATION, f"got {opcode.name} inside a fragmented message"
                )
            self._opcode = opcode
            self._utf8.reset()
        self._size += len(frame.payload)
        if self.max_message_size is not None and self._size > self.max_message_size:
            size = self._size
            self._reset()
            raise ProtocolError(
                Rule.PAYLOAD_TOO_BIG,
                f"message of {size}+ bytes, maximum is {self.max_message_size}",
            )
        if self._opcode is Opcode.TEXT:
            try:
                self._utf8.decode(frame.payload, final=frame.fin)
            except UnicodeDecodeError as exc:
                self._reset()
                raise ProtocolError(Rule.INVALID_UTF8, f"text message: {exc.reason}") from None
        self._parts.append(bytes(frame.payload))
        if not frame.fin:
            return None
        message = Message(self._opcode, b"".join(self._parts))
        self._reset()
        return message

    def _reset(self) -> None:
        self._opcode = None
        self._parts = []
        self._size = 0
        self._utf8.reset()
