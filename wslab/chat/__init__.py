"""Parte 3's chat: public and private messages, many sessions per user, drop and
resume with offsets and an epoch, on one node or several.

- :mod:`.hub`: who receives what (pure); :mod:`.stores`: where messages and users are
  kept (memory, SQLite); :mod:`.node`: the rules over the stores, with the limits;
- :class:`ChatRouter`: the whole chat as one synchronous object over memory stores
  (notebook 04, the simulation);
- :mod:`.wire` and :mod:`.server`: the JSON protocol and the network adapter.
"""

from .errors import AuthError, Refusal
from .model.router import ChatRouter
from .rules.messages import Delivery, DeliveryKind, Outbound, Session

__all__ = ["AuthError", "ChatRouter", "Delivery", "DeliveryKind", "Outbound", "Refusal", "Session"]
