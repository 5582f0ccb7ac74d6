"""Prepared frames: encode a server-to-client text frame once, write its bytes to many.

With compression off, every recipient of a chat message gets the same bytes on the
wire: a server frame is never masked, so only the payload and its length vary. Yet
:func:`websockets.asyncio.server.broadcast` serializes the frame again for every
connection (a ``Frame``, a ``BytesIO``, a ``struct.pack``, a list of pending
writes). :func:`prepare_text` serializes it once, with websockets' own
``Frame.serialize``, and :func:`write_prepared` hands those bytes to each
connection's transport. This is Gorilla websocket's ``PreparedMessage`` (encode
once, write to many), for the one case where the encoding is the same for all.

Only the frame bytes are bypassed; websockets' state machine stays in charge of
everything else (pings, pongs, the closing handshake, keepalive, errors). A complete
unmasked text frame changes nothing in that state machine (``send_text`` with
``fin=True`` only appends the serialized frame to the pending writes), so writing
the same bytes directly leaves it exactly as ``broadcast`` would.

Eligibility, checked for each connection at each write: the checks of
``broadcast`` (state OPEN; no fragmented message being sent, else the connection
is skipped with the same warning), plus those that make the bytes right for it:
server side (unmasked), no extension negotiated (permessage-deflate would change
the bytes), no pending writes of the library's own (order on the wire), no debug
logging of frames. A connection that is open but fails one of the last four goes
through ``broadcast`` itself; one whose transport is closing (a peer that reset the
connection) is skipped, so asyncio never logs "socket.send() raised exception." for
it. There's no backpressure, as with ``broadcast``: the caller gives a ``limit`` of
unwritten bytes and what to do with a connection over it (the chat sheds slow
readers), and that check comes before every write.

Coalescing. :func:`join` puts several prepared messages, for the same recipients,
into one :class:`PreparedText` whose ``frames`` are their frames back to back (each a
whole frame, in order), so each recipient gets one ``transport.write`` (one system
call) for the lot instead of one per message: Gorilla's write pump and Centrifugo's
writer batch the same way. On the wire nothing changes (the bytes are the same
frames, in the same order); only the number of writes does.
"""

from __future__ import annotations

import dataclasses
import sys
import traceback
from collections.abc import Callable, Iterable, Sequence

from websockets.asyncio.server import ServerConnection, broadcast
from websockets.frames import Frame, Opcode
from websockets.protocol import OPEN, SERVER

__all__ = ["PreparedText", "join", "prepare_text", "write_prepared"]


@dataclasses.dataclass(frozen=True, slots=True)
class PreparedText:
    """Text messages as UTF-8 (``payloads``, one per message) and as server frames
    written back to back (``frames``): one message from :func:`prepare_text`, several
    from :func:`join`."""

    payloads: tuple[bytes, ...]
    frames: bytes


def prepare_text(text: str) -> PreparedText:
    """Encode ``text`` once: a FIN text frame, unmasked, no extension (RFC 6455, 5.2).

    Raises ``UnicodeEncodeError`` for a string that is not valid Unicode (lone
    surrogates), as sending it with websockets would.
    """
    payload = text.encode()
    return PreparedText(
        (payload,), Frame(Opcode.TEXT, payload).serialize(mask=False, extensions=[])
    )


def join(prepared: Sequence[PreparedText]) -> PreparedText:
    """The messages of ``prepared``, in order, as one write (see Coalescing above)."""
    if len(prepared) == 1:
        return prepared[0]
    return PreparedText(
        tuple(p for one in prepared for p in one.payloads), b"".join(one.frames for one in prepared)
    )


def write_prepared(
    connections: Iterable[ServerConnection],
    prepared: PreparedText,
    *,
    limit: int | None = None,
    over: Callable[[ServerConnection], None] | None = None,
) -> int:
    """Send ``prepared`` to every open connection; return how many got its prepared bytes.

    A connection with more than ``limit`` bytes not yet written is handed to
    ``over`` instead (and gets nothing); ``limit`` None checks nothing. Connections
    that are not open, or whose transport is closing, are skipped, as ``broadcast``
    skips them; a connection sending a fragmented message is skipped with
    ``broadcast``'s warning; any other open connection that cannot take the prepared
    bytes gets each message from ``broadcast`` (so the count can be below the number
    of recipients). A failed write is logged on that connection's logger and the
    others go on.
    """
    if limit is None:
        limit = sys.maxsize
    elif over is None:
        raise TypeError("write_prepared: a limit needs an 'over' callback")
    written = 0
    library: list[ServerConnection] = []
    frames = prepared.frames
    # One pass, and each attribute read once: at 10,000 recipients per message this
    # loop is most of the server's work besides the system calls themselves.
    for connection in connections:
        transport = connection.transport
        if transport.get_write_buffer_size() > limit:
            over(connection)
            continue
        protocol = connection.protocol
        if protocol.state is not OPEN or transport.is_closing():
            continue  # broadcast skips it too; a closing transport must not be written
        if (
            connection.send_in_progress is not None
            or protocol.writes
            or protocol.extensions
            or protocol.side is not SERVER
            or protocol.debug
        ):
            library.append(connection)  # broadcast skips it or sends it its own way
            continue
        try:
            transport.write(frames)
        except Exception as error:
            connection.logger.warning(
                "skipped broadcast: failed to write message: %s",
                traceback.format_exception_only(error)[0].strip(),
            )
        else:
            written += 1
    for payload in prepared.payloads if library else ():
        broadcast(library, payload, text=True)
    return written
