"""Measure the chat model: cost per delivery as sessions grow, and cost of a resume.

Two questions, answered with wall-clock timings of the real ``ChatModel``:

1. Does routing cost per delivery stay flat from 10 to 10,000 open sessions? It is
   compared with ``ScanAllModel``, the same model except that its hub's
   ``recipients`` rule (:meth:`wslab.chat.rules.hub.Hub.recipients`) looks at every live
   session for every message (the naive design).
2. Does a resume cost grow with the messages missed after the offset, and not with
   the size of the history?

Secrets are hashed with :data:`wslab.chat.rules.kdf.CHEAP` here, explicitly, so that opening
10,000 sessions takes little time and the resume timings measure routing, not scrypt;
the cost per open with the server's default (:data:`wslab.chat.rules.kdf.SCRYPT`) is
measured on its own (``kdf_cost``; ``benchmarks/chat_login.py`` measures it over a
socket).

Run: ``python -m benchmarks.chat_routing`` (full sizes) or ``--quick``.
"""

from __future__ import annotations

import argparse
import gc
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from wslab.chat import ChatModel
from wslab.chat.rules.hub import Hub
from wslab.chat.rules.kdf import CHEAP, SCRYPT
from wslab.chat.rules.messages import Message

__all__ = [
    "ResumeCost",
    "RoutingCost",
    "ScanAllHub",
    "ScanAllModel",
    "kdf_cost",
    "resume_costs",
    "routing_costs",
]

SESSION_SIZES = (10, 100, 1_000, 10_000)
SESSIONS_PER_USER = 2


class ScanAllHub(Hub):
    """The naive ``recipients`` rule: for every message, look at every live session."""

    def recipients(self, message: Message) -> list:
        user_of = self.user_of
        return [peer for sid, peer in self._live.items() if message.visible_to(user_of(sid))]


class ScanAllModel(ChatModel):
    """The chat model with the naive hub: same rules, recipients found by a scan."""

    hub_class = ScanAllHub


@dataclass(frozen=True)
class RoutingCost:
    """Best time per delivery over the repeats, for one model, workload and size."""

    model: str
    workload: str  # "private" or "public"
    sessions: int
    messages: int
    deliveries: int
    ns_per_delivery: float


@dataclass(frozen=True)
class ResumeCost:
    """Best time of one resume (open + replay) for a history size and a gap."""

    history: int
    missed: int
    replayed: int
    us_per_resume: float


def _timed(action: Callable[[], None]) -> float:
    """Seconds taken by ``action``, with the garbage collector paused."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        start = time.perf_counter()
        action()
        return time.perf_counter() - start
    finally:
        if enabled:
            gc.enable()


def _populate(model_cls: type[ChatModel], sessions: int) -> tuple[ChatModel, list, int]:
    model = model_cls(retention=1000, epoch="bench", kdf=CHEAP)
    users = max(2, sessions // SESSIONS_PER_USER)
    opened = [model.open(f"u{i % users}", "pw") for i in range(sessions)]
    return model, opened, users


def routing_costs(
    sizes: Sequence[int] = SESSION_SIZES,
    *,
    private_messages: int = 2_000,
    public_deliveries: int = 200_000,
    repeats: int = 5,
    seed: int = 5,
    models: Sequence[type[ChatModel]] = (ChatModel, ScanAllModel),
    hot_users: int = 5,
) -> list[RoutingCost]:
    """Time ``submit`` for private and public workloads at each number of sessions.

    Private: ``/msg`` from a random session to another random user, each user with
    ``SESSIONS_PER_USER`` sessions, so every message has the same number of
    deliveries at every size. Public: enough messages for about
    ``public_deliveries`` deliveries, but never fewer than 10 messages (so the
    largest sizes deliver more than that: 100,000 at 10,000 sessions). Every case is built first, then the repeats
    run round-robin over the cases and the best time of each is kept, so a burst of
    load on the machine cannot favour one size. Queues are drained between rounds,
    untimed.

    One more case, workload ``"private-hot"``: the largest size, but all traffic
    among the sessions of ``hot_users`` users. Same algorithm, small working set:
    it tells how much of the growth at 10,000 sessions is the CPU caches.
    """
    rng = random.Random(seed)
    cases = []  # (model class name, workload, sessions, model, ids, plan)
    for sessions in sizes:
        users = max(2, sessions // SESSIONS_PER_USER)
        plan_private = []
        for _ in range(private_messages):
            sender = rng.randrange(sessions)
            to = rng.randrange(users - 1)
            to = to + 1 if to >= sender % users else to  # never oneself
            plan_private.append((sender, f"/msg u{to} oi"))
        public_count = max(10, public_deliveries // sessions)
        plan_public = [(rng.randrange(sessions), "oi") for _ in range(public_count)]
        for model_cls in models:
            model, opened, _ = _populate(model_cls, sessions)
            ids = [s.id for s in opened]
            workloads = [("private", plan_private), ("public", plan_public)]
            if sessions == max(sizes) and model_cls is ChatModel:
                hot = []
                for _ in range(private_messages):
                    a = rng.randrange(hot_users)
                    b = (a + 1 + rng.randrange(hot_users - 1)) % hot_users
                    hot.append((a + users * rng.randrange(SESSIONS_PER_USER), f"/msg u{b} oi"))
                workloads.append(("private-hot", hot))
            for workload, plan in workloads:
                cases.append(
                    (
                        model_cls.__name__,
                        workload,
                        sessions,
                        model,
                        ids,
                        [(ids[i], line) for i, line in plan],
                    )
                )
    best = [float("inf")] * len(cases)
    deliveries = [0] * len(cases)
    for model_cls in models:  # one round-robin per design: the naive model's scans
        mine = [k for k, case in enumerate(cases) if case[0] == model_cls.__name__]
        for _ in range(repeats):  # would flush the caches between the model's runs
            for k in mine:
                _, _, _, model, ids, plan = cases[k]
                submit = model.submit

                def run(plan=plan, submit=submit) -> None:
                    for sid, line in plan:
                        submit(sid, line)

                elapsed = _timed(run)
                deliveries[k] = sum(len(model.take(sid)) for sid in ids)
                best[k] = min(best[k], elapsed / deliveries[k])
    return [
        RoutingCost(name, workload, sessions, len(plan), deliveries[k], best[k] * 1e9)
        for k, (name, workload, sessions, _, _, plan) in enumerate(cases)
    ]


def resume_costs(
    cases: Sequence[tuple[int, int]],
    *,
    repeats: int = 7,
    batch: int = 20,
) -> list[ResumeCost]:
    """Time ``open(..., resume=(epoch, newest - missed))`` for each (history, missed).

    The history is filled with ``history`` messages: two of every three public, one
    private between two other users (so the resumer skips it). Each case has its own
    model, all built first. One timing is ``batch`` resumes in a row (one alone
    lasts a few microseconds, too close to the timer's noise); the repeats run
    round-robin over the cases, so a burst of load cannot favour one of them, and the
    best is kept, divided by ``batch``. The resumed sessions are read and closed
    afterwards, untimed.
    """
    models = []
    for history, missed in cases:
        if missed > history:
            raise ValueError(f"missed ({missed}) must not exceed history ({history}).")
        model = ChatModel(retention=history, epoch="bench", kdf=CHEAP)
        writer = model.open("writer", "pw")
        model.open("other", "pw")
        model.open("reader", "pw")
        for n in range(history):
            model.submit(writer.id, "/msg other p" if n % 3 == 2 else "m")
            if n % 1000 == 999:
                model.take(writer.id)
        model.take(writer.id)
        models.append(model)
    best = [float("inf")] * len(cases)
    replayed = [0] * len(cases)
    for _ in range(repeats):
        for k, ((_, missed), model) in enumerate(zip(cases, models, strict=True)):
            offset = model.newest_offset - missed
            opened = []

            def run(model=model, opened=opened, offset=offset) -> None:
                for _ in range(batch):
                    opened.append(model.open("reader", "pw", resume=("bench", offset)))

            elapsed = _timed(run)
            for session in opened:
                assert session.recovered
                replayed[k] = len(model.take(session.id))
                model.close(session.id)
            best[k] = min(best[k], elapsed / batch)
    return [
        ResumeCost(history, missed, replayed[k], best[k] * 1e6)
        for k, (history, missed) in enumerate(cases)
    ]


def kdf_cost(repeats: int = 20) -> tuple[float, float]:
    """Milliseconds per open of a registered user, best of ``repeats``: (SCRYPT, CHEAP).

    In the synchronous model the hash runs inline, so this is the hash plus routing.
    """
    out = []
    for model in (ChatModel(epoch="bench", kdf=SCRYPT), ChatModel(epoch="bench", kdf=CHEAP)):
        model.open("ana", "pw")
        open_session = model.open
        best = min(_timed(lambda o=open_session: o("ana", "pw")) for _ in range(repeats))
        out.append(best * 1e3)
    return out[0], out[1]


def _print_routing(rows: list[RoutingCost]) -> None:
    print(
        f"{'model':<14}{'workload':<12}{'sessions':>9}{'messages':>10}"
        f"{'deliveries':>12}{'ns/delivery':>13}"
    )
    for r in rows:
        print(
            f"{r.model:<14}{r.workload:<12}{r.sessions:>9}{r.messages:>10}"
            f"{r.deliveries:>12}{r.ns_per_delivery:>13.1f}"
        )


def _print_resume(rows: list[ResumeCost]) -> None:
    print(f"{'history':>9}{'missed':>8}{'replayed':>10}{'us/resume':>11}")
    for r in rows:
        print(f"{r.history:>9}{r.missed:>8}{r.replayed:>10}{r.us_per_resume:>11.1f}")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, a few seconds")
    args = parser.parse_args(argv)
    if args.quick:
        routing = routing_costs(private_messages=300, public_deliveries=30_000, repeats=3)
        cases = [(10_000, m) for m in (10, 100, 1_000, 10_000)]
        cases += [(h, 100) for h in (1_000, 10_000)]
    else:
        routing = routing_costs()
        cases = [(100_000, m) for m in (10, 100, 1_000, 10_000, 100_000)]
        cases += [(h, 100) for h in (1_000, 10_000)]
    print("Routing cost per delivery (best of repeats)")
    _print_routing(routing)
    print()
    print("Resume cost (open with resume, best of repeats)")
    _print_resume(resume_costs(cases))
    default_ms, cheap_ms = kdf_cost()
    print()
    print(
        f"Connect of a registered user: {default_ms:.2f} ms with SCRYPT (the server's "
        f"default), {cheap_ms:.3f} ms with CHEAP"
    )


if __name__ == "__main__":
    main()
