"""Property tests: random sequences of connect, resume, submit, take and disconnect
against a deliberately naive oracle.

The oracle does not share code with the model: it keeps the whole log in a list,
derives what is visible by scanning it, and mirrors every open session's queue. Each
``take`` must equal the oracle's queue exactly, which implies the properties of the
issue; the most important ones are also asserted on their own, so a failure names
the broken promise:

- nobody receives a private message not addressed to or sent by them;
- a session receives every message it may see, kept while it was open (and, when it
  resumed, every one after its offset that the history still held);
- inside a session offsets strictly increase, nothing arrives twice;
- errors reach only their origin and consume no offset;
- a wrong secret never opens a session;
- a user who always resumes from the last offset it saw, and is told
  recovered=True, misses nothing and sees nothing twice.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from wslab.chat import AuthError, ChatModel, Notice
from wslab.chat.rules.kdf import CHEAP

USERS = ["ana", "bia", "joao"]
FAITHFUL = "fiel"
EPOCH = "prop-epoch"

# Expected item: (kind, offset, sender, to, text); text None = "any text".
Item = tuple[str, "int | None", "str | None", "str | None", "str | None"]


@dataclass
class Message:
    offset: int
    kind: str
    sender: str
    to: str | None
    text: str

    def visible_to(self, user: str) -> bool:
        return self.kind == "public" or user in (self.sender, self.to)

    def item(self) -> Item:
        return (self.kind, self.offset, self.sender, self.to, self.text)


@dataclass
class OpenSession:
    user: str
    expected: list[Item] = field(default_factory=list)
    received: list[int] = field(default_factory=list)  # offsets taken, in order
    last_seen: int = 0


def as_item(item) -> Item:
    if isinstance(item, Notice):
        return (str(item.kind), None, None, None, item.text)
    return (str(item.kind), item.offset, item.sender, item.to, item.text)


def matches(expected: Item, got: Item) -> bool:
    return expected[:4] == got[:4] and (expected[4] is None or expected[4] == got[4])


class ModelAgainstOracle(RuleBasedStateMachine):
    """Router and oracle driven side by side."""

    @initialize(retention=st.integers(min_value=0, max_value=8))
    def start(self, retention):
        self.retention = retention
        self.model = ChatModel(retention=retention, epoch=EPOCH, kdf=CHEAP)
        self.log: list[Message] = []
        self.secrets: dict[str, str] = {}
        self.sessions: dict[str, OpenSession] = {}
        self.closed: list[str] = []
        self.counter = 0
        # The faithful user: one device that drops and always resumes from what it saw.
        self.faithful_id = self._open(FAITHFUL, "fiel-pw", None)
        self.faithful_start = len(self.log)
        self.faithful_received: list[int] = []
        self.faithful_always_recovered = True

    # -- oracle helpers --------------------------------------------------------------

    def _kept_offsets(self) -> range:
        newest = len(self.log)
        return range(max(1, newest - self.retention + 1), newest + 1)

    def _open(self, user: str, secret: str, resume) -> str:
        """Connect through the model and mirror what the rules say must be queued."""
        session = self.model.open(user, secret, resume=resume)
        name = user.lower()
        assert session.user == name
        self.secrets.setdefault(name, secret)
        state = OpenSession(name, last_seen=len(self.log))
        if resume is not None:
            epoch, offset = resume
            kept = self._kept_offsets()
            if epoch == EPOCH and offset <= len(self.log):
                recovered = offset >= len(self.log) - self.retention
                wanted = [m for m in self.log if m.offset > offset and m.offset in kept]
            else:  # another epoch, or ahead of the newest (an older copy of the store)
                recovered = False
                wanted = [m for m in self.log if m.offset in kept]
            assert session.recovered is recovered
            if not recovered:
                state.expected.append(("system", None, None, None, None))
            state.expected += [m.item() for m in wanted if m.visible_to(name)]
        else:
            assert session.recovered is False
        self.sessions[session.id] = state
        return session.id

    def _take(self, sid: str) -> list[Item]:
        state = self.sessions[sid]
        got = [as_item(d) for d in self.model.take(sid)]
        assert len(got) == len(state.expected), (got, state.expected)
        for want, have in zip(state.expected, got, strict=True):
            assert matches(want, have), (want, have)
        for kind, offset, sender, to, _ in got:
            if kind == "private":  # privacy, stated on its own
                assert state.user in (sender, to)
            if offset is not None:
                assert not state.received or offset > state.received[-1]  # no repeats
                state.received.append(offset)
                state.last_seen = offset
        state.expected = []
        return got

    # -- rules -----------------------------------------------------------------------

    @rule(
        user=st.sampled_from(USERS),
        upper=st.booleans(),
        resume=st.sampled_from(["none", "zero", "newest", "random", "other-epoch"]),
        pick=st.integers(min_value=0, max_value=10_000),
        read_now=st.booleans(),
    )
    def connect(self, user, upper, resume, pick, read_now):
        newest = len(self.log)
        choice = {
            "none": None,
            "zero": (EPOCH, 0),
            "newest": (EPOCH, newest),
            "random": (EPOCH, pick % (newest + 1)),
            "other-epoch": ("older-epoch", pick),
        }[resume]
        sid = self._open(
            user.upper() if upper else user, self.secrets.get(user, f"{user}-pw"), choice
        )
        if read_now:
            self._take(sid)

    @rule(user=st.sampled_from(USERS + [FAITHFUL]), resume=st.booleans())
    def wrong_secret_opens_nothing(self, user, resume):
        if user not in self.secrets:
            return
        before = self.model.online()
        with pytest.raises(AuthError):
            self.model.open(
                user,
                "wrong-" + self.secrets[user],
                resume=(EPOCH, len(self.log)) if resume else None,
            )
        assert self.model.online() == before

    @rule(user=st.sampled_from(USERS), pick=st.integers(min_value=1, max_value=3))
    def resume_above_newest_is_never_recovered(self, user, pick):
        """A store restored from an older copy: a notice, then what history holds."""
        sid = self._open(user, self.secrets.get(user, f"{user}-pw"), (EPOCH, len(self.log) + pick))
        assert self.sessions[sid].expected[0][0] == "system"
        self._take(sid)

    @precondition(lambda self: self.sessions)
    @rule(
        data=st.data(),
        what=st.sampled_from(["public", "private", "private-self", "who", "bad"]),
        recipient=st.sampled_from(USERS + [FAITHFUL]),
        bad=st.sampled_from(["", "   ", "/msg", "/msg ana", "/nope x", "/msg zz9 oi", "x" * 2001]),
    )
    def submit(self, data, what, recipient, bad):
        sid = data.draw(st.sampled_from(sorted(self.sessions)))
        sender = self.sessions[sid].user
        self.counter += 1
        text = f"t{self.counter}"
        newest = len(self.log)
        if what == "private" and recipient not in self.secrets:
            what = "bad-recipient"
        if what == "public":
            touched = self.model.submit(sid, text)
            msg = Message(newest + 1, "public", sender, None, text)
        elif what in ("private", "private-self"):
            to = sender if what == "private-self" else recipient
            touched = self.model.submit(sid, f"/msg {to.upper()} {text}")
            msg = Message(newest + 1, "private", sender, to, text)
        elif what == "who":
            touched = self.model.submit(sid, "/who")
            online = ", ".join(sorted({s.user for s in self.sessions.values()}))
            self.sessions[sid].expected.append(
                ("system", None, None, None, f"Online agora: {online}.")
            )
            assert touched == [sid]
            return
        else:
            touched = self.model.submit(
                sid, f"/msg {recipient} {text}" if what == "bad-recipient" else bad
            )
            self.sessions[sid].expected.append(("error", None, None, None, None))
            assert self.model.newest_offset == newest  # errors change no offset
            assert touched == [sid]  # errors reach only their origin
            return
        self.log.append(msg)
        reached = []
        for other, state in self.sessions.items():
            if msg.visible_to(state.user):
                state.expected.append(msg.item())
                reached.append(other)
        assert sorted(touched) == sorted(reached)  # submit names whom it queued for, once

    @precondition(lambda self: self.sessions)
    @rule(data=st.data())
    def take(self, data):
        sid = data.draw(st.sampled_from(sorted(self.sessions)))
        got = self._take(sid)
        if sid == self.faithful_id:
            self.faithful_received += [offset for _, offset, *_ in got if offset is not None]

    @precondition(lambda self: len(self.sessions) > 1)
    @rule(data=st.data())
    def disconnect(self, data):
        sid = data.draw(st.sampled_from(sorted(s for s in self.sessions if s != self.faithful_id)))
        self.model.close(sid)
        del self.sessions[sid]
        self.closed.append(sid)

    @rule(resume_own=st.booleans())
    def drop_and_return(self, resume_own):
        """A session drops without reading its queue and comes back resuming from the
        last offset it read (a device keeps that number); sometimes a fresh tab."""
        candidates = sorted(s for s in self.sessions if s != self.faithful_id)
        if not candidates:
            return
        sid = candidates[0]
        state = self.sessions.pop(sid)
        self.model.close(sid)
        self.closed.append(sid)
        self._open(
            state.user, self.secrets[state.user], (EPOCH, state.last_seen) if resume_own else None
        )

    @rule(read_first=st.booleans())
    def faithful_drops_and_resumes(self, read_first):
        if read_first:
            self.take_faithful()
        last = self.sessions[self.faithful_id].last_seen
        self.model.close(self.faithful_id)
        del self.sessions[self.faithful_id]
        self.faithful_id = self._open(FAITHFUL, "fiel-pw", (EPOCH, last))
        recovered = last >= len(self.log) - self.retention
        self.faithful_always_recovered &= recovered

    def take_faithful(self):
        got = self._take(self.faithful_id)
        self.faithful_received += [offset for _, offset, *_ in got if offset is not None]

    @rule(sid=st.sampled_from(["s999999", "nope"]))
    def unknown_sessions(self, sid):
        with pytest.raises(KeyError):
            self.model.take(sid)
        with pytest.raises(KeyError):
            self.model.submit(sid, "oi")
        self.model.close(sid)

    @precondition(lambda self: self.closed)
    @rule()
    def closed_sessions_are_unknown(self):
        sid = self.closed[-1]
        with pytest.raises(KeyError):
            self.model.take(sid)
        self.model.close(sid)

    # -- invariants ------------------------------------------------------------------

    @invariant()
    def online_matches_open_sessions(self):
        assert self.model.online() == sorted({s.user for s in self.sessions.values()})
        assert self.model.newest_offset == len(self.log)

    @invariant()
    def faithful_user_misses_nothing_and_sees_nothing_twice(self):
        self.take_faithful()
        received = self.faithful_received
        assert len(received) == len(set(received))
        assert received == sorted(received)
        if self.faithful_always_recovered:
            visible = [
                m.offset
                for m in self.log
                if m.offset > self.faithful_start and m.visible_to(FAITHFUL)
            ]
            assert received == visible


TestChatModel = ModelAgainstOracle.TestCase
TestChatModel.settings = settings(max_examples=300, stateful_step_count=40)


@given(
    retention=st.integers(min_value=1, max_value=6),
    plan=st.lists(
        st.tuples(st.integers(min_value=0, max_value=9), st.booleans(), st.booleans()),
        min_size=1,
        max_size=30,
    ),
)
def test_resuming_from_last_seen_with_recovered_true_misses_nothing(retention, plan):
    """Sequence form of the key promise, with two devices of the same user.

    Each step: ``burst`` messages flow (public from bia, private bia->ana and
    bia->joao alternating), then one of ana's devices drops (optionally reading its
    queue first) and returns with resume=(epoch, last offset it read). For each
    device: offsets strictly increase; and if every return was recovered=True, the
    device received exactly every message visible to ana since it first connected.
    """
    model = ChatModel(retention=retention, epoch=EPOCH, kdf=CHEAP)
    bia = model.open("bia", "b")
    model.open("joao", "j")
    devices = [model.open("ana", "a").id, model.open("ana", "a").id]
    last_seen = [0, 0]
    received: list[list[int]] = [[], []]
    all_recovered = [True, True]
    visible: list[int] = []
    n = 0

    def read(i: int) -> None:
        for d in model.take(devices[i]):
            if not isinstance(d, Notice):
                assert d.kind != "private" or "ana" in (d.sender, d.to)
                received[i].append(d.offset)
                last_seen[i] = d.offset

    for burst, read_first, which in plan:
        for _ in range(burst):
            n += 1
            line = ["public", "/msg ana p", "/msg joao p"][n % 3]
            model.submit(bia.id, "pub" if line == "public" else line)
            if line != "/msg joao p":
                visible.append(n)
        i = int(which)
        if read_first:
            read(i)
        model.close(devices[i])
        session = model.open("ana", "a", resume=(EPOCH, last_seen[i]))
        devices[i] = session.id
        all_recovered[i] &= session.recovered
        assert session.recovered == (last_seen[i] >= n - retention)
    read(0)
    read(1)
    for i in (0, 1):
        assert received[i] == sorted(set(received[i]))
        if all_recovered[i]:
            assert received[i] == visible


# -- the notebook's seeded fault-injection run ---------------------------------------

from wslab.chat.model.simulation import run_fault_injection  # noqa: E402
from wslab.chat.rules.hub import Hub  # noqa: E402


def test_fault_injection_run_has_no_violation_and_is_deterministic():
    first = run_fault_injection(seed=7, operations=3_000, retention=60, restart_every=800)
    assert first == run_fault_injection(seed=7, operations=3_000, retention=60, restart_every=800)
    assert first.violations == 0, first.examples
    # the run exercises what it claims to: gaps, recoveries, replays, refusals, errors
    assert first.gaps_announced > 0 and first.resumes_recovered > 0
    assert first.replays > 0 and first.live > 0
    assert first.auth_refusals > 0 and first.errors > 0 and first.private_messages > 0


class _LeakyHub(Hub):
    """Sends private messages to everyone: the checker must notice."""

    def recipients(self, message):
        return tuple(self._live.values())


class _ForgetfulHub(Hub):
    """Claims recovered=True even when history lost messages."""

    def plan(self, user, recovery):
        _, _, replay = super().plan(user, recovery)
        return recovery.point is not None, None, replay


class _LeakyModel(ChatModel):
    hub_class = _LeakyHub


class _ForgetfulModel(ChatModel):
    hub_class = _ForgetfulHub


@pytest.mark.parametrize("broken", [_LeakyModel, _ForgetfulModel])
def test_fault_injection_checker_catches_a_broken_router(broken):
    summary = run_fault_injection(seed=7, operations=3_000, retention=60, router_cls=broken)
    assert summary.violations > 0
