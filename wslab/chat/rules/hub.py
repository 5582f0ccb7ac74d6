"""Who receives what: the chat's routing rules, pure (sans-I/O).

:class:`Hub` knows the sessions open on this node and which of them a message goes to;
it never awaits and never knows where messages are kept. The log (``stores``) assigns
offsets and hands committed messages to :meth:`Hub.route`; the hub answers with
:class:`Outbound` items (a message or notice, the handles of the sessions it goes to,
whether it is a replay) that an adapter encodes once and writes to each session.

Opening a session is two steps, so that nothing is lost or doubled while its history
is read from a store that may be slow:

1. :meth:`Hub.open` registers the session as *recovering*: from then on, messages it
   may see are buffered for it;
2. the caller reads the log, then :meth:`Hub.recover` merges what was read with the
   buffer (by offset: each message once, in order) and returns the items to send;
   :meth:`Hub.go_live` returns what came meanwhile and switches the session to live
   delivery. Between the two, the caller may take its time writing the replay.

Costs: a public message is one ``Outbound`` whose handles are a snapshot of the live
sessions (one tuple, built once and shared by every public message until a session
goes live or closes, so consecutive messages carry the very same object and an adapter
can write them together); a private one looks up the two users' sessions by name.
Neither scans unrelated sessions. A recovering session's buffer holds at most
``max_buffer`` deliveries; past that, :meth:`Hub.go_live` refuses it with 1013.
"""

from __future__ import annotations

import itertools
from collections.abc import Collection, Sequence
from dataclasses import dataclass

from ..errors import CloseCode, Refusal
from .messages import Kind, LogState, Message, Notice, Outbound, Session

__all__ = ["Hub", "Read", "Recovery", "resume_read", "resume_verdict"]

EPOCH_CHANGED = (
    "O servidor mudou de época (perdeu o histórico ou é outro): você pode ter perdido "
    "mensagens; reenviamos as mais recentes que o histórico guarda."
)
AHEAD = (
    "Seu último offset ({offset}) está além da mensagem mais nova ({newest}): o histórico "
    "do servidor voltou a uma cópia mais antiga. Você pode ter perdido mensagens; "
    "reenviamos as mais recentes que ele guarda."
)
GAP = (
    "Você pode ter perdido mensagens: {lost} das {missed} enviadas desde o offset "
    "{offset} já saíram do histórico, que guarda as últimas {retention}."
)


@dataclass(frozen=True, slots=True)
class Read:
    """Which read of the log a new session needs: the messages after ``after`` (a
    resume in the log's epoch), or the newest ``recent`` the user may see, or none."""

    after: int | None = None
    recent: int = 0


def resume_verdict(point: tuple[str, int] | None, state: LogState) -> str | None:
    """Whether a resume point can be resumed exactly against ``state``: None when it
    can (same epoch, not ahead of the newest message), else the notice saying why not
    ("" for no point at all). Both the choice of read (:func:`resume_read`) and the plan
    (:meth:`Hub.plan`) ask this one question."""
    if point is None:
        return ""
    epoch, offset = point
    if epoch != state.epoch:
        return EPOCH_CHANGED
    if offset > state.newest:
        return AHEAD.format(offset=offset, newest=state.newest)
    return None


def resume_read(
    point: tuple[str, int] | None, state: LogState, history: int, retention: int
) -> Read:
    """The read a new session needs, given the log's current ``state``: the messages
    after its offset when the point can be resumed exactly; otherwise, for a resume,
    ``history`` (or the whole retention) newest messages; for a fresh session, the
    ``history`` it asked for."""
    if point is not None and resume_verdict(point, state) is None:
        return Read(after=point[1])
    count = history if point is None else (history or retention)
    return Read(recent=min(count, retention))


@dataclass(frozen=True, slots=True)
class Recovery:
    """What a new session asked for, and what the log returned for it.

    ``point`` is the resume point (epoch, offset) or None; ``messages`` are what the
    caller read for it (as :func:`resume_read` said), with ``state`` the log's state
    at that read.
    """

    point: tuple[str, int] | None
    state: LogState
    messages: Sequence[Message]
    retention: int


class _SessionState:
    __slots__ = ("session_id", "user", "handle", "buffer", "seen_upto")

    def __init__(self, session_id: str, user: str, handle: object) -> None:
        self.session_id = session_id
        self.user = user
        self.handle = handle
        self.buffer: list[Message] | None = []  # None once it overflowed
        self.seen_upto = 0  # buffered messages at or below this offset were replayed


class Hub:
    """The sessions open on this node and the rules of who sees what.

    ``recipients`` and ``plan`` are the two rules, kept as documented methods so a test
    or a benchmark can swap one for a broken or naive variant and watch the checker
    catch it.
    """

    def __init__(self, *, max_buffer: int = 1000) -> None:
        self.max_buffer = max_buffer
        self._sessions: dict[str, _SessionState] = {}
        self._recovering: dict[str, _SessionState] = {}
        self._live: dict[str, object] = {}  # session id -> handle, in opening order
        self._snapshot: tuple[object, ...] | None = None  # tuple(_live.values()), or None: stale
        # user -> handles of that user's live sessions: a tuple rebuilt on open and close
        # (a user has few sessions), so a private fan-out touches few objects.
        self._by_user: dict[str, tuple[object, ...]] = {}
        self._users: dict[str, int] = {}  # user -> sessions open (live or recovering)
        self._ids = itertools.count(1)

    # -- facts -----------------------------------------------------------------------

    def online(self) -> list[str]:
        """Sorted names of users with at least one session open here."""
        return sorted(self._users)

    def is_online(self, user: str) -> bool:
        return user in self._users

    def user_of(self, session_id: str) -> str:
        """The user of an open session (``KeyError`` if it is not open)."""
        return self._state(session_id).user

    def handle_of(self, session_id: str) -> object:
        return self._state(session_id).handle

    def __len__(self) -> int:
        return len(self._sessions)

    # -- sessions --------------------------------------------------------------------

    def open(self, user: str, handle: object) -> str:
        """Register a recovering session of ``user`` (already authenticated); its id."""
        session_id = f"s{next(self._ids)}"
        state = _SessionState(session_id, user, handle)
        self._sessions[session_id] = state
        self._recovering[session_id] = state
        self._users[user] = self._users.get(user, 0) + 1
        return session_id

    def recover(self, session_id: str, recovery: Recovery) -> tuple[Session, list[Outbound]]:
        """Plan what the session missed and return it: a notice, if any, then each
        message once, oldest first; the session keeps buffering until :meth:`go_live`.
        """
        state = self._recovering[session_id]
        recovered, notice, replay = self.plan(state.user, recovery)
        seen = recovery.state.newest  # the read covered everything up to here
        fresh = [m for m in state.buffer or () if m.offset > seen]
        state.buffer = [] if state.buffer is not None else None
        state.seen_upto = max(seen, fresh[-1].offset if fresh else 0)
        handles = (state.handle,)
        items = [Outbound(Notice(Kind.SYSTEM, notice), handles)] if notice else []
        items += [Outbound(m, handles, replayed=True) for m in replay]
        items += [Outbound(m, handles) for m in fresh]
        return Session(session_id, state.user, recovered, recovery.state.epoch), items

    def go_live(self, session_id: str) -> list[Outbound]:
        """Switch a recovering session to live delivery; what it buffered meanwhile.

        Raises:
            Refusal: (1013) its buffer overflowed while its replay was being written;
                the session is closed here, and may resume from its last offset.
        """
        state = self._recovering.pop(session_id)
        if state.buffer is None:
            self.close(session_id)
            raise Refusal(
                "Chegaram mensagens demais enquanto sua retomada era enviada: reconecte "
                "e retome do último offset.",
                CloseCode.TRY_AGAIN_LATER,
            )
        fresh = [m for m in state.buffer if m.offset > state.seen_upto]
        state.buffer = None
        self._live[session_id] = state.handle
        self._snapshot = None
        self._by_user[state.user] = self._by_user.get(state.user, ()) + (state.handle,)
        return [Outbound(m, (state.handle,)) for m in fresh]

    def close(self, session_id: str) -> None:
        """Forget a session, live or recovering; unknown ids are ignored."""
        state = self._sessions.pop(session_id, None)
        if state is None:
            return
        self._recovering.pop(session_id, None)
        if session_id in self._live:
            del self._live[session_id]
            self._snapshot = None
            remaining = tuple(h for h in self._by_user.get(state.user, ()) if h is not state.handle)
            if remaining:
                self._by_user[state.user] = remaining
            else:
                self._by_user.pop(state.user, None)
        left = self._users[state.user] - 1
        if left:
            self._users[state.user] = left
        else:
            del self._users[state.user]

    # -- messages --------------------------------------------------------------------

    def route(self, messages: Sequence[Message]) -> list[Outbound]:
        """Outbound items for committed messages, in the order given (offset order)."""
        items = []
        for message in messages:
            handles = self.recipients(message)
            if handles:
                items.append(Outbound(message, handles))
            for state in self._recovering.values():
                if state.buffer is not None and message.visible_to(state.user):
                    state.buffer.append(message)
                    if len(state.buffer) > self.max_buffer:
                        state.buffer = None
        return items

    def reply(self, session_id: str, kind: Kind, text: str) -> Outbound:
        """A notice (system or error) for one session only; never kept."""
        return Outbound(Notice(kind, text), (self._state(session_id).handle,))

    def announce(self, text: str) -> list[Outbound]:
        """A system notice for every live session; never kept."""
        handles = self._everyone()
        return [Outbound(Notice(Kind.SYSTEM, text), handles)] if handles else []

    # -- the two rules -----------------------------------------------------------------

    def recipients(self, message: Message) -> Collection[object]:
        """Peers of the live sessions that receive ``message``, each once."""
        if message.kind is Kind.PUBLIC:
            return self._everyone()
        sender = self._by_user.get(message.sender, ())
        if message.to == message.sender:
            return sender
        return sender + self._by_user.get(message.to, ())

    def plan(self, user: str, recovery: Recovery) -> tuple[bool, str | None, list[Message]]:
        """(recovered, notice, replay) for a session of ``user``.

        Recovered only when the resume point is of this epoch, not ahead of the newest
        message (:func:`resume_verdict`, on the state of the read), and nothing after
        it has left the history: then the replay is provably all it missed. Otherwise
        a notice says why not.
        """
        state, point = recovery.state, recovery.point
        visible = [m for m in recovery.messages if m.visible_to(user)]
        verdict = resume_verdict(point, state)
        if point is None or verdict is not None:
            return False, verdict or None, visible
        offset = point[1]
        replay = [m for m in visible if m.offset > offset]
        lost = max(0, state.oldest - offset - 1)
        if lost == 0:
            return True, None, replay
        notice = GAP.format(
            lost=lost, missed=state.newest - offset, offset=offset, retention=recovery.retention
        )
        return False, notice, replay

    def _everyone(self) -> tuple[object, ...]:
        """The handles of every live session: one snapshot until a session goes live or
        closes."""
        if self._snapshot is None:
            self._snapshot = tuple(self._live.values())
        return self._snapshot

    def _state(self, session_id: str) -> _SessionState:
        try:
            return self._sessions[session_id]
        except (KeyError, TypeError):
            raise KeyError(f"unknown or closed session: {session_id!r}") from None
