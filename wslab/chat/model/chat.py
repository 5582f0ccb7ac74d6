"""The chat as one synchronous object, for notebook 04, the simulation and the tests.

:class:`ChatModel` is a :class:`wslab.chat.node.ChatNode` over the in-memory stores,
driven without an event loop: those stores never suspend, so each coroutine runs to
its end in one step. Messages and notices land in a queue per session that :meth:`take` empties.
The rules (who sees what, when a resume is recovered) are the hub's
(:mod:`wslab.chat.rules.hub`), the same the network server runs.
"""

from __future__ import annotations

from collections.abc import Coroutine, Sequence

from ..assemble import choose_stores
from ..node import ChatNode, Limits
from ..rules.hub import Hub
from ..rules.kdf import SCRYPT, Scrypt
from ..rules.messages import Message, Outbound, Session
from ..rules.wire import resume_point

__all__ = ["ChatModel"]

# The model has no addresses and no clock: no throttle, no caps, no rate limit.
_MODEL_LIMITS = Limits(
    max_rate=None, login_free=None, registrations_per_minute=None, replays_per_second=None
)


def _now(coroutine: Coroutine):
    """Run a coroutine that never suspends to its end and return its value."""
    try:
        coroutine.send(None)
    except StopIteration as done:
        return done.value
    coroutine.close()
    raise RuntimeError("an in-memory store suspended: ChatModel cannot drive it")


class _Queue(list):
    """A session's pending messages and notices; the session's handle in the hub."""

    __slots__ = ("session_id",)

    def __init__(self) -> None:
        super().__init__()
        self.session_id = ""


class ChatModel:
    """The whole chat in one synchronous object: public and private messages reach every
    open session that may see them.

    Args:
        retention: how many messages (public and private) the history keeps.
        epoch: identity of the offsets; a fresh random one when omitted. Inject a
            fixed one only for reproducible demonstrations.
        kdf: cost of stored secrets; the production default unless lowered explicitly
            (notebooks and tests pass :data:`wslab.chat.rules.kdf.CHEAP`).

    Subclasses may set ``hub_class`` to a :class:`Hub` with other rules (a test's
    deliberately broken model, a benchmark's naive one).

    Raises:
        ValueError: if ``retention`` is not an integer >= 0 or ``epoch`` is not a
            non-empty string.
    """

    hub_class: type[Hub] = Hub

    def __init__(
        self, retention: int = 1000, *, epoch: str | None = None, kdf: Scrypt = SCRYPT
    ) -> None:
        stores = choose_stores(retention=retention, epoch=epoch)
        self._log = stores.log
        self._node = ChatNode(
            self._log,
            stores.credentials,
            kdf=kdf,
            limits=_MODEL_LIMITS,
            offload=None,
            hub=self.hub_class(),
        )
        self._queues: dict[str, _Queue] = {}
        self._touched: dict[str, None] = {}  # session ids given something by this call
        _now(self._node.start(self._put))

    @property
    def epoch(self) -> str:
        """Identity of the offsets; a resume from another epoch recovers nothing."""
        return self._log.state.epoch

    @property
    def retention(self) -> int:
        return self._log.retention

    @property
    def newest_offset(self) -> int:
        """Offset of the newest message, 0 before the first one."""
        return self._log.state.newest

    @property
    def hub(self) -> Hub:
        return self._node.hub

    def online(self) -> list[str]:
        """Sorted names of users with at least one open session."""
        return self._node.hub.online()

    def open(
        self, user: str, secret: str, resume: Sequence[object] | None = None, *, history: int = 0
    ) -> Session:
        """Open a session for ``user`` (registering the name on first use).

        Without ``resume`` the session starts from now, after the newest ``history``
        messages it may see. With ``resume=(epoch, offset)`` it first receives, in
        offset order, every kept message it may see above ``offset``; ``recovered``
        tells whether that is provably all it missed. When it is not (another epoch,
        an offset ahead of the newest, messages gone from history), a system notice
        comes first, then the newest messages history holds for the user.

        Raises:
            Refusal: bad name, empty secret, malformed ``resume``. Nothing is opened.
            AuthError: ``user`` is registered with another secret. Nothing is opened.
        """
        point = None if resume is None else resume_point(*_pair(resume))
        queue = _Queue()
        session, items = _now(self._node.open(user, secret, queue, resume=point, history=history))
        queue.session_id = session.id
        self._queues[session.id] = queue
        self._put(items + self._node.go_live(session.id))
        self._touched.clear()
        return session

    def close(self, session_id: str) -> None:
        """Close a session and drop its pending queue; unknown or closed ids are ignored."""
        if isinstance(session_id, str) and self._queues.pop(session_id, None) is not None:
            self._node.close(session_id)

    def take(self, session_id: str) -> list[Message]:
        """Return what is queued for the session, oldest first, and clear it.

        Raises:
            KeyError: if the session is unknown or closed.
        """
        queue = self._queue(session_id)
        queued = queue.copy()
        queue.clear()
        return queued

    def submit(self, session_id: str, text: str) -> list[str]:
        """Handle one line typed by the session's user.

        Plain text goes to every open session (the sender's echo is its
        acknowledgement); ``/msg user text`` to every session of both users; ``/who``
        answers the asking session. Bad input queues one error notice to this
        session only and keeps nothing.

        Returns the ids of the sessions that got something queued by this call.

        Raises:
            KeyError: if the session is unknown or closed.
            TypeError: if ``text`` is not a string.
        """
        self._queue(session_id)
        self._put(_now(self._node.submit(session_id, text)))
        touched = list(self._touched)
        self._touched.clear()
        return touched

    def _queue(self, session_id: str) -> _Queue:
        try:
            return self._queues[session_id]
        except (KeyError, TypeError):
            raise KeyError(f"Sessão desconhecida ou já encerrada: {session_id!r}.") from None

    def _put(self, items: list[Outbound]) -> None:
        touched = self._touched
        for item in items:
            for queue in item.handles:
                queue.append(item.item)
                touched[queue.session_id] = None


def _pair(resume: object) -> tuple[object, object]:
    if isinstance(resume, (tuple, list)) and len(resume) == 2:
        return resume[0], resume[1]
    return None, None
