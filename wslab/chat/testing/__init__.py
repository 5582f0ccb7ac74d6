"""Real parts for tests, notebooks and benchmarks, started on loopback and stopped by
PID: the chat in a background thread (:class:`ChatServer`), a Valkey server
(:class:`LocalValkey`) and a Valkey with replicas and Sentinels (:class:`ValkeyHA`)."""

from .sentinel import ValkeyHA
from .server import ChatServer
from .valkey import LocalValkey

__all__ = ["ChatServer", "LocalValkey", "ValkeyHA"]
