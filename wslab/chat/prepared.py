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
through ``broadcast`` itself. There's no backpressure, as with ``broadcast``: the
caller checks each connection's write buffer first (the chat sheds slow readers).
"""

from __future__ import annotations

import dataclasses
import traceback
from collections.abc import Iterable

from websockets.asyncio.server import ServerConnection, broadcast
from websockets.frames import Frame, Opcode
from websockets.protocol import OPEN, SERVER

__all__ = ["PreparedText", "prepare_text", "write_prepared"]


@dataclasses.dataclass(frozen=True, slots=True)
class PreparedText:
    """One text message, as UTF-8 (``payload``) and as a whole server frame (``frame``)."""

    payload: bytes
    frame: bytes


def prepare_text(text: str) -> PreparedText:
    """Encode ``text`` once: a FIN text frame, unmasked, no extension (RFC 6455, 5.2).

    Raises ``UnicodeEncodeError`` for a string that is not valid Unicode (lone
    surrogates), as sending it with websockets would.
    """
    payload = text.encode()
    return PreparedText(payload, Frame(Opcode.TEXT, payload).serialize(mask=False, extensions=[]))


def write_prepared(connections: Iterable[ServerConnection], prepared: PreparedText) -> int:
    """Send ``prepared`` to every open connection; return how many got its prepared bytes.

    Connections that are not open are skipped, as ``broadcast`` skips them; a
    connection sending a fragmented message is skipped with ``broadcast``'s warning;
    any other open connection that cannot take the prepared bytes gets the message
    from ``broadcast`` (so the count can be below the number of recipients). A
    failed write is logged on that connection's logger and the others go on.
    """
    written = 0
    library: list[ServerConnection] = []
    frame = prepared.frame
    for connection in connections:
        protocol = connection.protocol
        if (
            protocol.state is not OPEN
            or connection.send_in_progress is not None
            or protocol.extensions
            or protocol.side is not SERVER
            or protocol.writes
            or protocol.debug
        ):
            library.append(connection)  # broadcast skips it or sends it its own way
            continue
        try:
            connection.transport.write(frame)
        except Exception as error:
            connection.logger.warning(
                "skipped broadcast: failed to write message: %s",
                traceback.format_exception_only(error)[0].strip(),
            )
        else:
            written += 1
    if library:
        broadcast(library, prepared.payload, text=True)
    return written
