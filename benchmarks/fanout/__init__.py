"""Pieces of the chat fan-out benchmark (``python -m benchmarks.chat_fanout``).

``servers`` runs one server under test in its own process; ``loadgen`` is the load
generator, another process, that holds every session and measures. Both start with
:func:`prepare_process`, so each one owns a CPU and may open thousands of sockets.
"""
from __future__ import annotations

import os
import resource
import sys

__all__ = ["ALL_KINDS", "SERVER_KINDS", "prepare_process"]

#: The servers compared, in the order of the tables: ours first, then the two references.
SERVER_KINDS = ("wslab", "bare", "socketio")
#: Plus ``raw``, a calibration relay that measures the load generator's ceiling.
ALL_KINDS = SERVER_KINDS + ("raw",)


def prepare_process(cpu: int | None) -> str:
    """Pin this process to ``cpu`` (if given and possible) and raise RLIMIT_NOFILE to its hard limit.

    Returns a short note of what was done, for the run's metadata. Pinning is
    skipped, not fatal, where ``os.sched_setaffinity`` is missing or refused (the
    note says so): the figures are then still valid, only noisier.
    """
    notes = []
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        soft = hard
    notes.append(f"nofile={soft}")
    if cpu is not None:
        if not hasattr(os, "sched_setaffinity"):
            notes.append("not pinned (no sched_setaffinity)")
        else:
            try:
                os.sched_setaffinity(0, {cpu})
                notes.append(f"cpu={cpu}")
            except OSError as exc:
                notes.append(f"not pinned ({exc.strerror})")
                print(f"aviso: não consegui fixar o processo na CPU {cpu}: {exc.strerror}", file=sys.stderr)
    return ", ".join(notes)
