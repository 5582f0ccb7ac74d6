"""Real parts for tests, notebooks and benchmarks, started on loopback and stopped by
PID: the chat in a background thread (:class:`ChatServer`) or as a process
(:class:`ServeProcess`), a Valkey server (:class:`LocalValkey`) and a Valkey with
replicas and Sentinels (:class:`ValkeyHA`). The processes die with the thread that
started them (Linux), so a killed kernel leaves none behind."""

from .sentinel import ValkeyHA
from .serve import ServeProcess
from .server import ChatServer
from .valkey import LocalValkey

__all__ = ["ChatServer", "LocalValkey", "ServeProcess", "ValkeyHA"]
