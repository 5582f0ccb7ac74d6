"""The chat routing model: who receives what, kept pure (sans-I/O).

:class:`ChatRouter` takes calls (connect, submit, take, disconnect) and fills
per-session queues; it owns no sockets, threads, clocks or event loops, so the same
object serves the notebook simulation, the tests and a network adapter.

Costs, per operation:

- a delivery is one ``list.append`` on a session queue found through an index (the
  queues of all sessions for public text; ``user -> tuple of queues`` for ``/msg``):
  O(1) per delivery, no scan of unrelated sessions. Queues hold the same frozen
  :class:`Delivery` object, so an adapter can serialize a message once;
- history is a bounded ``deque`` whose offsets are contiguous, so the messages after
  an offset are the last ``newest - offset`` entries: a resume walks only those.
"""
from __future__ import annotations

import itertools
import operator
import secrets
from collections import deque
from collections.abc import Collection, Sequence

from .commands import CommandError, PrivateText, PublicText, WhoQuery, parse_line
from .credentials import DEFAULT_KDF_ITERATIONS, Credentials
from .delivery import Delivery, DeliveryKind, Session
from .names import normalize_name

__all__ = ["ChatRouter"]

_SESSION_ID = operator.attrgetter("session_id")


class _Queue(list):
    """A session's pending deliveries; knows its session so a fan-out can name it."""

    __slots__ = ("session_id",)

    def __init__(self, session_id: str) -> None:
        super().__init__()
        self.session_id = session_id


class _SessionState:
    """An open session and its pending queue (oldest first).

    The same list object lives as long as the session (``take`` copies and clears
    it), so the router's indexes can hold the queue itself and a fan-out appends to
    it without going through the state.
    """

    __slots__ = ("session", "user", "queue")

    def __init__(self, session: Session) -> None:
        self.session = session
        self.user = session.user
        self.queue = _Queue(session.id)


class ChatRouter:
    """Routes public and private messages to every open session that may see them.

    Args:
        retention: how many messages (public and private) the history keeps for
            resumes; older ones are dropped first.
        epoch: identity of this router's offset sequence; a fresh random one when
            omitted. Inject a fixed one only for reproducible demonstrations.
        kdf_iterations: PBKDF2 rounds for stored secrets (see
            :mod:`wslab.chat.credentials` for why the default is modest).

    Raises:
        ValueError: if ``retention`` is not an integer >= 0 or ``epoch`` is not a
            non-empty string.
    """

    def __init__(
        self,
        retention: int = 1000,
        *,
        epoch: str | None = None,
        kdf_iterations: int = DEFAULT_KDF_ITERATIONS,
    ) -> None:
        if isinstance(retention, bool) or not isinstance(retention, int) or retention < 0:
            raise ValueError(f"retention deve ser um inteiro >= 0, não {retention!r}.")
        if epoch is None:
            epoch = secrets.token_hex(16)
        elif not isinstance(epoch, str) or not epoch:
            raise ValueError(f"epoch deve ser um texto não vazio, não {epoch!r}.")
        self._epoch = epoch
        self._retention = retention
        self._credentials = Credentials(epoch, kdf_iterations)
        self._history: deque[Delivery] = deque(maxlen=retention)
        self._newest = 0  # offset of the newest message ever kept; 0 before the first
        self._sessions: dict[str, _SessionState] = {}
        self._queues: dict[str, _Queue] = {}  # session id -> queue, for public text
        # user -> queues of that user's open sessions. A tuple, rebuilt on connect and
        # disconnect (a user has few sessions), so that a fan-out touches as few
        # objects as possible: one dict slot, one tuple, the queues themselves.
        self._by_user: dict[str, tuple[_Queue, ...]] = {}
        self._ids = itertools.count(1)

    # -- read-only facts -------------------------------------------------------------

    @property
    def epoch(self) -> str:
        """Identity of this router's offsets; a resume from another epoch recovers nothing."""
        return self._epoch

    @property
    def retention(self) -> int:
        """How many messages the history keeps."""
        return self._retention

    @property
    def newest_offset(self) -> int:
        """Offset of the newest kept message, 0 before the first one."""
        return self._newest

    def online(self) -> list[str]:
        """Sorted names of users with at least one open session."""
        return sorted(self._by_user)

    # -- sessions --------------------------------------------------------------------

    def connect(
        self, user: str, secret: str, resume: Sequence[object] | None = None
    ) -> Session:
        """Open a session for ``user`` (registering the name on first use).

        Without ``resume`` the session starts from now. With ``resume=(epoch,
        offset)`` it first receives, in offset order, every message in history it may
        see above ``offset``; ``recovered`` tells whether that is provably all it
        missed. When it is not, a system notice is queued first, and, if the epoch is
        another router's, everything the history still holds for the user is replayed.

        Raises:
            ValueError: bad name, empty secret, malformed ``resume``, or an offset
                above the newest one of this epoch. Nothing is registered or opened.
            AuthError: ``user`` is registered with another secret. Nothing is opened.
        """
        name = normalize_name(user)
        replay, recovered, notice = self._plan_resume(resume)
        self._credentials.authenticate(name, secret)

        session = Session(id=f"s{next(self._ids)}", user=name, recovered=recovered)
        state = _SessionState(session)
        if notice is not None:
            state.queue.append(Delivery(DeliveryKind.SYSTEM, None, None, None, notice))
        state.queue.extend(d for d in replay if d.visible_to(name))
        self._sessions[session.id] = state
        self._queues[session.id] = state.queue
        self._by_user[name] = self._by_user.get(name, ()) + (state.queue,)
        return session

    def disconnect(self, session_id: str) -> None:
        """Close a session and drop its pending queue; unknown or closed ids are ignored."""
        state = self._sessions.pop(session_id, None) if isinstance(session_id, str) else None
        if state is None:
            return
        del self._queues[session_id]
        user = state.user
        remaining = tuple(q for q in self._by_user[user] if q is not state.queue)
        if remaining:
            self._by_user[user] = remaining
        else:
            del self._by_user[user]

    def take(self, session_id: str) -> list[Delivery]:
        """Return what is queued for the session, oldest first, and clear it.

        Raises:
            KeyError: if the session is unknown or closed.
        """
        queue = self._state(session_id).queue
        queued = queue.copy()
        queue.clear()
        return queued

    def submit(self, session_id: str, text: str) -> list[str]:
        """Handle one line typed by the session's user.

        Plain text goes to every open session (the sender's echo is its
        acknowledgement); ``/msg user text`` to every session of both users; ``/who``
        answers the asking session. Bad input queues one error notice to this
        session only and keeps nothing.

        Returns the ids of the sessions that got something queued by this call, so a
        network adapter knows whom to ``take`` for without looking at every session.

        Raises:
            KeyError: if the session is unknown or closed.
            TypeError: if ``text`` is not a string.
        """
        state = self._state(session_id)
        sender = state.user
        try:
            command = parse_line(text)
            if (
                isinstance(command, PrivateText)
                and command.to not in self._by_user  # online users are registered
                and command.to not in self._credentials
            ):
                raise CommandError(
                    f"O usuário '{command.to}' não existe: ninguém entrou com esse nome."
                )
        except CommandError as error:
            state.queue.append(Delivery(DeliveryKind.ERROR, None, None, None, str(error)))
            return [session_id]

        if isinstance(command, WhoQuery):
            names = ", ".join(self.online())
            state.queue.append(
                Delivery(DeliveryKind.SYSTEM, None, None, None, f"Online agora: {names}.")
            )
            return [session_id]
        if isinstance(command, PublicText):
            message = self._keep(DeliveryKind.PUBLIC, sender, None, command.text)
        else:
            message = self._keep(DeliveryKind.PRIVATE, sender, command.to, command.text)
        recipients = self._recipients(message)
        for queue in recipients:
            queue.append(message)
        if message.kind is DeliveryKind.PUBLIC:
            return list(self._queues)  # every open session, in connection order
        return list(map(_SESSION_ID, recipients))

    # -- internals -------------------------------------------------------------------

    def _state(self, session_id: str) -> _SessionState:
        try:
            return self._sessions[session_id]
        except (KeyError, TypeError):
            raise KeyError(f"Sessão desconhecida ou já encerrada: {session_id!r}.") from None

    def _keep(self, kind: DeliveryKind, sender: str, to: str | None, text: str) -> Delivery:
        self._newest += 1
        message = Delivery(kind, self._newest, sender, to, text)
        self._history.append(message)
        return message

    def _recipients(self, message: Delivery) -> Collection[_Queue]:
        """Queues of the open sessions that receive ``message``, each once, by index."""
        if message.kind is DeliveryKind.PUBLIC:
            return self._queues.values()
        sender = self._by_user.get(message.sender, ())
        if message.to == message.sender:
            return sender
        return sender + self._by_user.get(message.to, ())

    def _plan_resume(
        self, resume: Sequence[object] | None
    ) -> tuple[list[Delivery], bool, str | None]:
        """Validate ``resume``; return (history to replay, recovered, gap notice)."""
        if resume is None:
            return [], False, None
        if (
            not isinstance(resume, (tuple, list))
            or len(resume) != 2
            or not isinstance(resume[0], str)
            or isinstance(resume[1], bool)
            or not isinstance(resume[1], int)
            or resume[1] < 0
        ):
            raise ValueError(
                f"resume deve ser None ou (época, offset) com offset inteiro >= 0, "
                f"não {resume!r}."
            )
        epoch, offset = resume
        if epoch != self._epoch:
            return list(self._history), False, (
                "O servidor mudou de época (foi reiniciado): você pode ter perdido "
                "mensagens; reenviamos o que o histórico ainda guarda."
            )
        if offset > self._newest:
            raise ValueError(
                f"Offset {offset} está além da mensagem mais nova ({self._newest}) "
                "desta época."
            )
        missed = self._newest - offset
        kept = min(missed, len(self._history))
        replay = list(itertools.islice(reversed(self._history), kept))
        replay.reverse()
        if kept == missed:
            return replay, True, None
        return replay, False, (
            f"Você pode ter perdido mensagens: {missed - kept} das {missed} enviadas "
            f"desde o offset {offset} já saíram do histórico, que guarda as últimas "
            f"{self._retention}."
        )
