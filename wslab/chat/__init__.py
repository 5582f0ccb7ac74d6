"""Parte 3's chat as a pure routing model: public and private messages, many
sessions per user, drop and resume with offsets and an epoch.

``ChatRouter`` owns no I/O; :mod:`wslab.chat.server` is the network adapter that
translates frames (:mod:`wslab.chat.wire`) to its calls and its deliveries to frames.
"""
from .credentials import AuthError
from .delivery import Delivery, DeliveryKind, Session
from .router import ChatRouter

__all__ = ["AuthError", "ChatRouter", "Delivery", "DeliveryKind", "Session"]
