"""The checker: the clients' histories (:mod:`.clients`) against the final log.

The final log is read from the primary's Valkey once the run has ended: the entries of
``wslab:chat:log`` at or below the committed offset (``c`` in ``wslab:chat:meta``),
each ``offset -> (sender, to, text)``. What must hold (each failure is a violation):

1. **acknowledged**: every line whose own message reached its sender is in the log,
   at the offset the sender saw, exactly once (texts are unique);
2. **stored once**: no line is in the log twice, however many times it was sent again
   with its id (:mod:`.clients` sends refused and unanswered lines again);
3. **delivered**: every message any client received is in the log at the offset it
   was received with, with the same sender, recipient and text: nothing delivered is
   taken back;
4. **one text per offset**: no offset was ever seen with two different texts;
5. **no silent gap**: each client's messages come in increasing offsets, and between
   two consecutive ones of one *chain* (a session, and the sessions that resumed it
   with ``recovered: true``) the log holds no message that client may see; a resume
   answered ``recovered: false`` starts a new chain (a gap the client was told about);
6. **one epoch**: every welcome names the final log's epoch (a new epoch means the
   store lost its data, which none of the faults of this run should cause).

Who may see a message (the protocol's rule, re-stated here on purpose): everyone sees a
public one (``to`` is None); a private one is seen by its sender and its recipient.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field

__all__ = ["Report", "check", "read_log"]

Entry = tuple[str, str | None, str]  # sender, to, text


def visible(user: str, entry: Entry) -> bool:
    sender, to, _ = entry
    return to is None or user in (sender, to)


@dataclass
class Report:
    """What the checker counted and what it found wrong (at most 20 violations are
    described; ``violations`` counts them all)."""

    operations: int = 0  # sends (first and again), messages received, welcomes
    sent: int = 0  # lines
    resent: int = 0  # sends of a line again, with its id
    acknowledged: int = 0
    errors: int = 0  # error frames answering a line
    unknown: int = 0  # lines never acknowledged (refused every time, or unanswered)
    appeared_after_error: int = 0  # lines refused at least once that are in the log
    delivered: int = 0
    resumes: int = 0
    recovered: int = 0
    log_size: int = 0
    violations: int = 0
    examples: list[str] = field(default_factory=list)

    def violation(self, text: str) -> None:
        self.violations += 1
        if len(self.examples) < 20:
            self.examples.append(text)


def read_log(client, prefix: str = "wslab:chat:") -> tuple[str, dict[int, Entry]]:
    """The epoch and the committed entries, from a redis-py (sync) client of the
    primary (decoded replies)."""
    meta = client.hgetall(f"{prefix}meta")
    committed = int(meta.get("c", meta.get("s", 0)))
    log: dict[int, Entry] = {}
    start = "-"
    while True:
        batch = client.xrange(f"{prefix}log", start, f"{committed}-0", count=10_000)
        for entry_id, fields in batch:
            log[int(entry_id.split("-")[0])] = (fields["s"], fields["t"] or None, fields["x"])
        if len(batch) < 10_000:
            return meta.get("e", ""), log
        start = "(" + batch[-1][0]


def check(epoch: str, log: Mapping[int, Entry], histories: Mapping[str, list[tuple]]) -> Report:
    """Check every client's history against the final log (see the module docstring)."""
    report = Report(log_size=len(log))
    where = Counter(text for _, _, text in log.values())
    for text, copies in where.items():
        if copies > 1:
            report.violation(f"{text!r} guardada {copies} vezes no log")
    texts: dict[int, set[str]] = defaultdict(set)
    for user, history in histories.items():
        _check_client(user, history, epoch, log, where, texts, report)
    for offset, seen in texts.items():
        if len(seen) > 1:
            report.violation(f"offset {offset} visto com {len(seen)} textos: {sorted(seen)}")
    return report


def _check_client(user, history, epoch, log, where, texts, report) -> None:
    acked: set[str] = set()
    refused: set[str] = set()
    sent: list[str] = []
    seen: int | None = None  # the newest offset of the current chain
    for event in history:
        kind = event[0]
        report.operations += 1
        if kind == "send":
            sent.append(event[2])
        elif kind == "resend":
            report.resent += 1
        elif kind == "error":
            report.errors += 1
            if len(event) > 3 and event[3] is not None:
                refused.add(event[3])
        elif kind == "welcome":
            _, _, got_epoch, recovered, asked = event
            if got_epoch != epoch:
                report.violation(f"{user}: boas-vindas com a época {got_epoch}, não {epoch}")
            if asked is not None:
                report.resumes += 1
                report.recovered += bool(recovered)
            seen = asked[1] if (recovered and asked) else None
        elif kind == "message":
            _, _, offset, sender, to, text, _replayed = event
            report.delivered += 1
            texts[offset].add(text)
            entry = log.get(offset)
            if entry != (sender, to, text):
                report.violation(f"{user} recebeu {offset}={text!r} de {sender}; no log: {entry!r}")
            if sender == user and text.startswith(f"{user}-"):
                if text not in acked and where[text] == 0:
                    report.violation(f"{text!r} confirmada e fora do log")
                acked.add(text)
            if seen is not None:
                if offset <= seen:
                    report.violation(f"{user}: {offset} depois de {seen} (fora de ordem)")
                else:
                    missing = [
                        o for o in range(seen + 1, offset) if o in log and visible(user, log[o])
                    ]
                    if missing:
                        report.violation(
                            f"{user}: lacuna silenciosa entre {seen} e {offset} "
                            f"({len(missing)} mensagens, a primeira {missing[0]})"
                        )
            seen = offset if seen is None or offset > seen else seen
    report.sent += len(sent)
    report.acknowledged += len(acked)
    report.unknown += sum(1 for text in sent if text not in acked)
    report.appeared_after_error += sum(1 for text in refused if where[text])
