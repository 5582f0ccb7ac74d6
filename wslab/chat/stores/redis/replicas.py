"""What "stored" means when the primary has replicas: a write is confirmed only once
every replica attached to the primary received it and at least one replica has it in
its AOF, fsynced, as the primary has (``appendfsync always``).

The check rides on the connection that wrote, right after the write, in the same
pipeline (one round trip)::

    <the write>  WAIT <attached> <CONFIRM_MS>  WAITAOF 1 1 <CONFIRM_MS>  ...  ROLE

- ``WAITAOF 1 1`` alone is not enough, for two reasons found on Valkey 9.1: a replica
  answers the primary's ``REPLCONF GETACK`` before its own fsync, so a lone
  ``WAITAOF`` waits for the replica's next periodic ack (about 1 s per write, measured);
  the ``WAIT`` before it takes one ack, and ``WAITAOF`` then asks again, after the
  replica's fsync (about 1 ms per round trip on loopback). And with two replicas,
  Sentinel promotes the one with the highest replication offset *as it last saw it*
  (its INFO may be a second old), which may be the replica that lacks the write:
  waiting until every attached replica received it leaves no wrong choice.
- ``WAIT`` and ``WAITAOF`` inside a script or ``MULTI`` return at once without
  waiting (so a script placed after them in the pipeline can read their outcome, as
  the log's commit script does), never in the write's own script.
- ``ROLE`` says how many replicas are attached now: a replica that died during the
  wait is no longer counted, so its death costs one wait (at most 2 x ``CONFIRM_MS``)
  and no error; the next write waits for the replicas ``ROLE`` named.

A pipeline that carries a confirmation must never be retried by the client: a retry on
a new connection would make ``WAIT`` count that connection's writes (none).
"""

from __future__ import annotations

import logging
from typing import Any

__all__ = ["CONFIRM_MS", "Replicas"]

CONFIRM_MS = 500  # each of WAIT and WAITAOF waits at most this long

logger = logging.getLogger(__name__)


class Replicas:
    """Queues the waits after a write and judges their replies.

    Args:
        required: False for a server without replicas (``--redis URL``): nothing is
            queued and every write counts as confirmed once it returns (the server's
            own ``appendfsync always`` is then the whole guarantee).
    """

    def __init__(self, required: bool) -> None:
        self.required = required
        self.attached = 1  # replicas the last ROLE named (at least one is needed)

    def queue_waits(self, pipe: Any) -> int:
        """Add ``WAIT`` and ``WAITAOF`` to ``pipe`` (a redis-py pipeline, after the
        write): two replies. Returns how many replicas the ``WAIT`` asks for (pass it
        to :meth:`confirmed`: other writes may change :attr:`attached` meanwhile)."""
        asked = self.attached
        pipe.execute_command("WAIT", asked, CONFIRM_MS)
        pipe.execute_command("WAITAOF", 1, 1, CONFIRM_MS)
        return asked

    @staticmethod
    def queue_role(pipe: Any) -> None:
        """Add ``ROLE`` to ``pipe``: one reply."""
        pipe.execute_command("ROLE")

    def confirmed(self, asked: int, received: Any, on_disk: Any, role: Any) -> bool:
        """Whether the write before the waits is safe from a failover, given the
        replicas ``asked`` for and the replies of ``WAIT``, ``WAITAOF`` and ``ROLE`` (an
        exception among them: no). Notes how many replicas are attached now, for the
        next write."""
        if any(isinstance(reply, BaseException) for reply in (received, on_disk, role)):
            return False
        if not role or role[0] != "master":
            return False  # the write went to a server that is no longer the primary
        attached = len(role[2])
        needed = min(asked, max(1, attached))
        self.attached = max(1, attached)
        local, replicas = on_disk
        if local >= 1 and replicas >= 1 and received >= needed:
            return True
        logger.warning(
            "write not confirmed: %d of %d replicas received it, on disk locally %d and on "
            "%d replicas (%d attached now)",
            received,
            needed,
            local,
            replicas,
            attached,
        )
        return False

    async def confirm(self, client: Any, write: tuple[str | int, ...]) -> tuple[Any, bool]:
        """Run one ``write`` (a command tuple) and, if required, its confirmation, in one
        pipeline on one connection of ``client`` (which must not retry). Returns the
        write's reply and whether it is confirmed.

        Raises:
            redis.RedisError, OSError: the round trip failed (unknown outcome).
        """
        async with client.pipeline(transaction=False) as pipe:
            pipe.execute_command(*write)
            if self.required:
                asked = self.queue_waits(pipe)
                self.queue_role(pipe)
            replies = await pipe.execute(raise_on_error=False)
        if isinstance(replies[0], BaseException):
            raise replies[0]
        return replies[0], not self.required or self.confirmed(asked, *replies[1:])
