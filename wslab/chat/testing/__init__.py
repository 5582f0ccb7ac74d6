"""Real parts for tests, notebooks and benchmarks, started on loopback and stopped by
PID: the chat in a background thread (:class:`ChatServer`) and a Valkey server
(:class:`LocalValkey`)."""

from .server import ChatServer
from .valkey import LocalValkey

__all__ = ["ChatServer", "LocalValkey"]
