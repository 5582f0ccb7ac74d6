"""What the fan-out benchmark reads from /proc (Linux): CPU time and resident memory.

Every function returns None where /proc (or the process) is not there, so the
benchmark still runs elsewhere, with those columns empty.
"""

from __future__ import annotations

import os

__all__ = ["cpu_seconds", "machine_cpu_seconds", "memory_bytes"]


def cpu_seconds(pid: int | None) -> float | None:
    """User + system CPU seconds of process ``pid``, all its threads together."""
    if pid is None:
        return None
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def memory_bytes(pid: int | None, field: str = "VmRSS") -> int | None:
    """A memory field of ``/proc/PID/status`` in bytes: ``VmRSS`` (resident now) or ``VmHWM`` (peak)."""
    if pid is None:
        return None
    try:
        with open(f"/proc/{pid}/status", "rb") as f:
            for line in f:
                if line.startswith(field.encode() + b":"):
                    return int(line.split()[1]) * 1024  # the kernel writes these in kB
    except OSError:
        return None
    return None


def machine_cpu_seconds() -> tuple[float, float] | None:
    """(busy, stolen) CPU seconds of the whole machine since boot, from /proc/stat.

    Busy is user + nice + system + irq + softirq over all CPUs; with the
    benchmark's own processes subtracted it tells whether something else ran
    during a measurement (the figures are then suspect). Stolen is time the
    hypervisor gave our virtual CPUs to someone else.
    """
    try:
        with open("/proc/stat", "rb") as f:
            fields = [int(x) for x in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    tick = os.sysconf("SC_CLK_TCK")
    user, nice, system, _idle, _iowait, irq, softirq, steal = (fields + [0] * 8)[:8]
    return (user + nice + system + irq + softirq) / tick, steal / tick
