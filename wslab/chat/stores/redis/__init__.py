"""The Redis/Valkey stores: any number of nodes pointed at one Redis share one log, one
epoch, one set of registered users, presence and the limits' counts.

- :mod:`.client`: the redis-py client with bounded waits, and the failure sentence;
- :mod:`.log`: :class:`RedisLog`, the message log (one Lua append, a stream, followers);
- :mod:`.credentials`: :class:`RedisCredentials`; :mod:`.presence`: :class:`RedisPresence`;
- :mod:`.limiter`: :class:`RedisLimiter`, the limits' counts as Lua scripts.

Imported only by a node started with ``--redis``: the client weighs ~5 MiB of resident
memory that a node on SQLite never needs.
"""

from .credentials import RedisCredentials
from .limiter import RedisLimiter
from .log import RedisLog
from .presence import RedisPresence

__all__ = ["RedisCredentials", "RedisLimiter", "RedisLog", "RedisPresence"]
