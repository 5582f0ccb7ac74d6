"""The Redis/Valkey stores: any number of nodes pointed at one Redis share one log, one
epoch, one set of registered users, presence and the limits' counts.

- :mod:`.client`: the redis-py client with bounded waits, and the failure sentence;
- :mod:`.log`: :class:`RedisLog`, the message log (a stream, the committed offset, the
  follower that delivers up to it); :mod:`.writer`: each node's ordered writer (its lines
  in rounds, one Lua append each); :mod:`.replicas`: what "confirmed" means when the
  primary has replicas (WAIT and WAITAOF after the write);
- :mod:`.credentials`: :class:`RedisCredentials`; :mod:`.presence`: :class:`RedisPresence`;
- :mod:`.limiter`: :class:`RedisLimiter`, the limits' counts as Lua scripts.

Imported only by a node started with ``--redis`` or ``--redis-sentinel``: the client weighs ~5 MiB of resident
memory that a node on SQLite never needs.
"""

from .credentials import RedisCredentials
from .limiter import RedisLimiter
from .log import RedisLog
from .presence import RedisPresence

__all__ = ["RedisCredentials", "RedisLimiter", "RedisLog", "RedisPresence"]
