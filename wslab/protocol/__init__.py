"""The sans-I/O WebSocket core: frames (:mod:`.frames`), the opening handshake
(:mod:`.handshake`) and their errors (:mod:`.errors`).

Bytes in, events out; nothing here opens a socket, reads a clock or starts a thread,
so the notebooks, the adapters and the tests all use the same code.
"""

from .errors import HandshakeError, NeedData, ProtocolError

__all__ = ["HandshakeError", "NeedData", "ProtocolError"]
