"""The chat on the network: the websockets server that translates frames into node calls
and writes what the node says to send, to whom.

- :mod:`.service`: :class:`ChatService`, the sessions, the fan-out writes, shedding;
- :mod:`.connection`: one connection's guards (the websockets overrides live there);
- :mod:`.fanout`: frames encoded once, written to many; :mod:`.http`: static files,
  Host and Origin; :mod:`.gate`: connection caps; :mod:`.logs`: bounded log lines;
- ``static/``: the browser client.
"""

from .service import ChatService

__all__ = ["ChatService"]
