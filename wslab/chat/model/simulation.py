"""A seeded, randomized run of many devices against the model, with faults.

Devices (several per user) send, read, drop without reading, return with a resume
point, try wrong secrets, and the server restarts now and then (a new model, a new
epoch). A checker that does not use the router's logic follows every step from the
outside: it predicts offsets by counting the messages it sent, knows from its own log
who may see each one, and compares what every session reads with what the rules
promise. Every broken promise is counted as a violation.

Pure and deterministic for a given seed (no clocks, no threads, epochs derived from
the seed), so the notebook can print its summary and nbval compare it.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field

from ..errors import AuthError
from ..rules.kdf import CHEAP
from ..rules.messages import Kind, Message
from .chat import ChatModel

__all__ = ["SimulationSummary", "run_fault_injection"]


@dataclass(frozen=True)
class SimulationSummary:
    """Counts of one run; ``violations`` must be 0."""

    operations: int
    restarts: int
    connects: int
    resumes: int
    resumes_recovered: int
    gaps_announced: int
    gap_notices_read: int
    chains_checked: int
    auth_refusals: int
    messages: int
    private_messages: int
    deliveries: int
    live: int
    replays: int
    errors: int
    violations: int
    examples: tuple[str, ...] = ()

    def rows(self) -> list[tuple[str, int]]:
        """(label in pt-BR, count) pairs for a summary table."""
        return [
            ("operações", self.operations),
            ("reinícios do servidor (nova época)", self.restarts),
            ("conexões abertas", self.connects),
            ("retomadas (resume)", self.resumes),
            ("  com recovered=True", self.resumes_recovered),
            ("  com lacuna anunciada (recovered=False)", self.gaps_announced),
            ("avisos de lacuna lidos", self.gap_notices_read),
            ("dispositivos sempre recuperados, conferidos", self.chains_checked),
            ("senhas erradas recusadas", self.auth_refusals),
            ("mensagens guardadas", self.messages),
            ("  privadas", self.private_messages),
            ("entregas lidas", self.deliveries),
            ("  ao vivo", self.live),
            ("  reenviadas na volta", self.replays),
            ("erros (só para a origem)", self.errors),
            ("violações", self.violations),
        ]


@dataclass
class _Message:
    offset: int
    kind: str
    sender: str
    to: str | None
    text: str

    def visible_to(self, user: str) -> bool:
        return self.kind == "public" or user in (self.sender, self.to)


@dataclass
class _Open:
    """What the checker knows about one open session."""

    sid: str
    user: str
    opened_at: int  # newest offset of the log when it opened
    pending: list[int]  # offsets still expected from the replay
    notice_due: bool  # a gap notice must come first
    checked_upto: int  # log offsets already turned into expectations
    bad_inputs: int = 0
    whos: int = 0
    last: int = 0  # newest offset read in this session


@dataclass
class _Device:
    """A laptop, phone or tab: it keeps its resume point across drops."""

    user: str
    session: _Open | None = None
    point: tuple[str, int] | None = None  # (epoch, last offset read or welcome offset)
    seen: list[int] = field(default_factory=list)  # offsets read in the current epoch
    chain_epoch: str | None = None
    chain_start: int = 0
    chain_intact: bool = True  # every return so far was recovered=True


class _Run:
    def __init__(
        self,
        seed: int,
        users: int,
        max_sessions: int,
        retention: int,
        router_cls: type[ChatModel],
    ) -> None:
        self.rng = random.Random(seed)
        self.router_cls = router_cls
        self.seed = seed
        self.retention = retention
        self.restarts = 0
        self.model = self._new_model()
        self.log: list[_Message] = []
        self.names = [f"user{i:02d}" for i in range(users)]
        self.secrets = {name: f"pw-{name}" for name in self.names}
        self.registered: list[str] = []  # in the current model, in order
        self.devices = [_Device(n) for n in self.names for _ in range(max_sessions)]
        self.count: Counter[str] = Counter()
        self.violations: list[str] = []
        self.texts = 0

    def _new_model(self) -> ChatModel:
        return self.router_cls(
            retention=self.retention, epoch=f"sim{self.seed}-{self.restarts}", kdf=CHEAP
        )

    def fail(self, what: str) -> None:
        self.violations.append(what)

    # -- the checker's own model -----------------------------------------------------

    def kept_window(self) -> int:
        """Lowest offset still in history (the log is the checker's, not the router's)."""
        return max(1, len(self.log) - self.retention + 1)

    def visible_after(self, user: str, lower: int) -> list[int]:
        start = max(lower, self.kept_window() - 1)
        return [m.offset for m in self.log[start:] if m.visible_to(user)]

    # -- operations ------------------------------------------------------------------

    def connect(self, device: _Device) -> None:
        resume = device.point if device.point is not None else None
        session = self.model.open(device.user, self.secrets[device.user], resume=resume)
        if device.user not in self.registered:
            self.registered.append(device.user)
        self.count["connects"] += 1
        newest = len(self.log)
        if self.model.newest_offset != newest:
            self.fail(f"newest_offset {self.model.newest_offset} != {newest}")
        if resume is None:
            expected_recovered, pending, notice = False, [], False
            device.point = (self.model.epoch, newest)  # the welcome tells both
            device.seen = []
            device.chain_epoch, device.chain_start, device.chain_intact = (
                self.model.epoch,
                newest,
                True,
            )
        else:
            self.count["resumes"] += 1
            epoch, offset = resume
            if epoch == self.model.epoch:
                expected_recovered = offset >= newest - self.retention
                pending = self.visible_after(device.user, offset)
                device.chain_intact &= expected_recovered
            else:
                expected_recovered = False
                pending = self.visible_after(device.user, 0)
                # A new chain starts at offset 0 of the new epoch; it is whole if the
                # new history has lost nothing yet.
                device.seen = []
                device.chain_epoch, device.chain_start = self.model.epoch, 0
                device.chain_intact = newest <= self.retention
            notice = not expected_recovered
            if session.recovered:
                self.count["recovered"] += 1
            else:
                self.count["gaps"] += 1
        if session.recovered != expected_recovered:
            self.fail(f"{session.id}: recovered={session.recovered}, esperado {expected_recovered}")
        device.session = _Open(session.id, device.user, newest, pending, notice, newest)

    def take(self, device: _Device) -> None:
        state = device.session
        got = self.model.take(state.sid)
        notices = [d for d in got if d.kind == Kind.SYSTEM]
        errors = [d for d in got if d.kind == Kind.ERROR]
        kept = [d for d in got if isinstance(d, Message)]
        if state.notice_due:
            if not got or got[0].kind != Kind.SYSTEM:
                self.fail(f"{state.sid}: lacuna não anunciada")
            else:
                self.count["notices"] += 1
                notices = notices[1:]
            state.notice_due = False
        if len(notices) != state.whos:
            self.fail(f"{state.sid}: {len(notices)} avisos, esperado {state.whos}")
        if len(errors) != state.bad_inputs:
            self.fail(f"{state.sid}: {len(errors)} erros, esperado {state.bad_inputs}")
        self.count["errors"] += len(errors)
        state.whos = state.bad_inputs = 0

        expected = state.pending + [
            m.offset for m in self.log[state.checked_upto :] if m.visible_to(state.user)
        ]
        state.pending, state.checked_upto = [], len(self.log)
        offsets = [d.offset for d in kept]
        if offsets != expected:
            self.fail(f"{state.sid}: leu {offsets[:5]}..., esperado {expected[:5]}...")
        for d in kept:
            if not 1 <= d.offset <= len(self.log):
                self.fail(f"{state.sid}: offset {d.offset} fora do log")
                continue
            m = self.log[d.offset - 1]
            if (str(d.kind), d.sender, d.to, d.text) != (m.kind, m.sender, m.to, m.text):
                self.fail(f"{state.sid}: conteúdo diferente no offset {d.offset}")
            if d.kind == Kind.PRIVATE and state.user not in (d.sender, d.to):
                self.fail(f"{state.sid}: privada alheia {d.offset} para {state.user}")
            if d.offset <= state.last:
                self.fail(f"{state.sid}: offset {d.offset} repetido ou fora de ordem")
            state.last = d.offset
            self.count["replays" if d.offset <= state.opened_at else "live"] += 1
        self.count["deliveries"] += len(kept)
        device.seen += offsets
        if offsets:
            device.point = (self.model.epoch, offsets[-1])

    def drop(self, device: _Device) -> None:
        """The connection dies: whatever was queued and not read is lost."""
        self.model.close(device.session.sid)
        device.session = None

    def submit(self, device: _Device) -> None:
        state = device.session
        roll = self.rng.random()
        self.texts += 1
        text = f"m{self.texts}"
        newest = len(self.log)
        if roll < 0.55:
            self.model.submit(state.sid, text)
            message = _Message(newest + 1, "public", state.user, None, text)
        elif roll < 0.85:
            to = self.rng.choice(self.registered)
            self.model.submit(state.sid, f"/msg {to.upper()} {text}")
            message = _Message(newest + 1, "private", state.user, to, text)
        elif roll < 0.9:
            self.model.submit(state.sid, "/who")
            state.whos += 1
            return
        else:
            bad = self.rng.choice(
                [
                    "",
                    "   ",
                    "/msg",
                    f"/msg {state.user}",
                    "/shout oi",
                    "/msg ninguem oi",
                    "x" * 2001,
                ]
            )
            self.model.submit(state.sid, bad)
            state.bad_inputs += 1
            if self.model.newest_offset != newest:
                self.fail("uma entrada inválida consumiu um offset")
            return
        self.log.append(message)
        self.count["messages"] += 1
        self.count["private"] += message.kind == "private"

    def wrong_secret(self) -> None:
        if not self.registered:
            return
        user = self.rng.choice(self.registered)
        before = self.model.online()
        try:
            self.model.open(user, "not-" + self.secrets[user])
        except AuthError:
            self.count["auth"] += 1
        else:
            self.fail(f"senha errada abriu uma sessão de {user}")
        if self.model.online() != before:
            self.fail("senha errada mudou quem está online")

    def restart(self) -> None:
        """The server process restarts: sessions, history and registrations are gone."""
        self.restarts += 1
        self.model = self._new_model()
        self.log = []
        self.registered = []
        for device in self.devices:
            device.session = None

    def check_chains(self) -> None:
        """A device that always came back recovered saw everything once."""
        for device in self.devices:
            if device.chain_epoch != self.model.epoch or device.session is None:
                continue
            self.take(device)
            if len(device.seen) != len(set(device.seen)):
                self.fail(f"{device.user}: um dispositivo viu uma mensagem duas vezes")
            if device.chain_intact:
                self.count["chains"] += 1
                wanted = [
                    m.offset for m in self.log[device.chain_start :] if m.visible_to(device.user)
                ]
                if device.seen != wanted:
                    self.fail(f"{device.user}: recovered=True mas faltaram mensagens")


def run_fault_injection(
    seed: int = 2026,
    users: int = 20,
    max_sessions: int = 3,
    operations: int = 10_000,
    retention: int = 200,
    restart_every: int = 2_500,
    router_cls: type[ChatModel] = ChatModel,
) -> SimulationSummary:
    """Drive ``operations`` random steps and check each one; see the module docstring.

    About one step in ``restart_every`` restarts the server (a new epoch).
    ``router_cls`` lets a test hand in a deliberately broken model and see the
    checker catch it.

    Raises:
        ValueError: if a size is not positive.
    """
    for name, value in (
        ("users", users),
        ("max_sessions", max_sessions),
        ("operations", operations),
        ("restart_every", restart_every),
    ):
        if value < 1:
            raise ValueError(f"{name} deve ser >= 1, não {value!r}.")
    run = _Run(seed, users, max_sessions, retention, router_cls)
    rng = run.rng
    for _ in range(operations):
        online = [d for d in run.devices if d.session is not None]
        offline = [d for d in run.devices if d.session is None]
        roll = rng.random()
        if roll < 1 / restart_every:
            run.restart()
        elif roll < 0.45 and online:
            run.submit(rng.choice(online))
        elif roll < 0.70 and online:
            run.take(rng.choice(online))
        elif roll < 0.80 and online:
            run.drop(rng.choice(online))
        elif roll < 0.98:
            if offline:
                device = rng.choice(offline)
                if rng.random() < 0.1:
                    device.point = None  # a fresh tab: no resume point
                run.connect(device)
        else:
            run.wrong_secret()
    run.check_chains()
    c = run.count
    return SimulationSummary(
        operations=operations,
        restarts=run.restarts,
        connects=c["connects"],
        resumes=c["resumes"],
        resumes_recovered=c["recovered"],
        gaps_announced=c["gaps"],
        gap_notices_read=c["notices"],
        chains_checked=c["chains"],
        auth_refusals=c["auth"],
        messages=c["messages"],
        private_messages=c["private"],
        deliveries=c["deliveries"],
        live=c["live"],
        replays=c["replays"],
        errors=c["errors"],
        violations=len(run.violations),
        examples=tuple(run.violations[:5]),
    )
