"""Pieces of the chat fan-out benchmark (``python -m benchmarks.chat_fanout``).

``servers`` runs one server under test in its own process; ``loadgen`` is the load
generator, another process, that holds every session and measures; ``record`` is
what the load generator hands the driver; ``procfs`` reads /proc for both. The
servers and the load generator start with :func:`prepare_process`, so each one
owns a CPU and may open tens of thousands of sockets.
"""

from __future__ import annotations

import importlib.util
import os
import resource
import sys

__all__ = ["ALL_KINDS", "LOOPS", "NODE_KINDS", "SERVER_KINDS", "default_loop", "prepare_process"]

#: The servers compared, in the order of the tables: ours first, then the references.
SERVER_KINDS = ("wslab", "bare", "socketio", "socketio-node")
#: Plus ``raw``, a calibration relay that measures the load generator's ceiling.
ALL_KINDS = SERVER_KINDS + ("raw",)
#: The kinds that run on Node.js (every other kind is Python, on the chosen loop).
NODE_KINDS = ("socketio-node",)
#: The event loops a Python server may run on.
LOOPS = ("uvloop", "asyncio")


def default_loop() -> str:
    """uvloop where it is installed (requirements.txt pins it where it builds), else asyncio's."""
    return "uvloop" if importlib.util.find_spec("uvloop") is not None else "asyncio"


def prepare_process(cpu: int | None) -> str:
    """Pin this process to ``cpu`` (if given and possible) and raise RLIMIT_NOFILE to its hard limit.

    Returns a short note of what was done, for the run's metadata. Pinning is
    skipped, not fatal, where ``os.sched_setaffinity`` is missing or refused (the
    note says so): the figures are then still valid, only noisier. Both settings
    survive ``exec``, so a Node.js server started through here gets them too.
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
                print(
                    f"aviso: não consegui fixar o processo na CPU {cpu}: {exc.strerror}",
                    file=sys.stderr,
                )
    return ", ".join(notes)
