"""What both fan-out benchmarks (``chat_fanout``, ``chat_fanout_cluster``) need from the
machine and from the command line: which CPUs to pin to, how busy the machine is (and
waiting until it is quiet), which process bounded a run, stopping a server, and the
options every run shares.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from . import LOOPS, procfs

__all__ = [
    "NOISY_OTHER_CPU",
    "SATURATED_CPU",
    "BenchmarkError",
    "add_run_arguments",
    "announce_load",
    "bound_by",
    "cpus",
    "machine_load",
    "params_from",
    "pct",
    "quietest",
    "run_loadgen",
    "stop",
    "tail",
    "wait_for_quiet",
]

ROOT = Path(__file__).resolve().parents[2]
NOISY_OTHER_CPU = 0.25  # cores used by other processes that make a run suspect
SATURATED_CPU = 0.9  # a process above this share of its core is what bounds the run


class BenchmarkError(RuntimeError):
    """A server or the load generator failed; the message says which and why."""


def cpus() -> tuple[int | None, int | None]:
    """CPUs for (server, load generator): 0 and 1 when this process may use both."""
    try:
        allowed = sorted(os.sched_getaffinity(0))
    except AttributeError:
        return None, None
    if len(allowed) < 2:
        return None, None
    return allowed[0], allowed[1]


def stop(proc: subprocess.Popen) -> None:
    """SIGTERM, then SIGKILL after 5 s: the process is gone when this returns."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
    if proc.stdout:
        proc.stdout.close()


def tail(log, lines: int = 5) -> str:
    log.flush()
    log.seek(0)
    text = log.read().decode(errors="replace").strip().splitlines()[-lines:]
    return (":\n  " + "\n  ".join(text)) if text else ""


def pct(x: float | None) -> str:
    return "  n/a" if x is None else f"{100 * x:4.0f}%"


def bound_by(server_cpu: float | None, loadgen_cpu: float | None) -> str:
    """Which process saturated its core: ``server``, ``loadgen``, ``both`` or ``neither``."""
    server = server_cpu is not None and server_cpu >= SATURATED_CPU
    loadgen = loadgen_cpu is not None and loadgen_cpu >= SATURATED_CPU
    return {(True, True): "both", (True, False): "server", (False, True): "loadgen"}.get(
        (server, loadgen), "neither"
    )


def other_cpu_now(seconds: float = 0.5) -> float | None:
    """CPUs kept busy by other processes over ``seconds``, while this benchmark is idle."""
    before = procfs.machine_cpu_seconds()
    time.sleep(seconds)
    after = procfs.machine_cpu_seconds()
    return None if before is None or after is None else (after[0] - before[0]) / seconds


def wait_for_quiet(limit: float) -> float | None:
    """Wait (at most ``limit`` seconds) until other processes leave the CPUs idle.

    The machine may be shared; a run measured beside other work says more about
    that work than about the servers. Returns the seconds waited, None without /proc.
    """
    start = time.monotonic()
    while True:
        load = other_cpu_now()
        if load is None:
            return None
        if load <= NOISY_OTHER_CPU or time.monotonic() - start >= limit:
            return time.monotonic() - start


def machine_load() -> dict:
    """The machine's load before the run: CPUs busy over one second, and the load averages."""
    try:
        averages = list(os.getloadavg())
    except OSError:
        averages = None
    return {"busy_cpus": other_cpu_now(1.0), "loadavg_1_5_15": averages}


def run_loadgen(command: list[str], params, label: str, logs: Iterable) -> str:
    """Run the load generator (``command``) for one run, bounded by the run's own
    timeouts; its stdout.

    Raises:
        BenchmarkError: it timed out or failed; the reason, with the tails of the
            servers' ``logs``.
    """
    bound = params.setup_timeout + params.warmup + params.duration + params.drain_timeout + 30
    try:
        done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=bound)
    except subprocess.TimeoutExpired:
        raise BenchmarkError(f"o gerador de carga não terminou em {bound:g} s ({label})") from None
    if done.returncode != 0:
        reason = done.stderr.strip().splitlines()[-1:] or ["sem mensagem"]
        tails = "".join(tail(log) for log in logs)
        raise BenchmarkError(f"o gerador de carga falhou ({label}): {reason[0]}{tails}")
    return done.stdout


def quietest(run: Callable, other_cpu: Callable, params, label: str, progress: Callable):
    """``run()`` after waiting (bounded) for a quiet machine, again while other
    processes took more than ``NOISY_OTHER_CPU`` during it (``params.noisy_retries``
    times at most); (the quietest attempt, how many attempts were made)."""
    attempts = []
    for _ in range(1 + params.noisy_retries):
        waited = wait_for_quiet(params.quiet_wait)
        if waited is not None and waited > 1:
            progress(f"  (waited {waited:.0f} s for other processes to leave the CPUs free)")
        attempts.append(run())
        used = other_cpu(attempts[-1])
        if (used or 0.0) <= NOISY_OTHER_CPU or len(attempts) > params.noisy_retries:
            break
        progress(f"  {label} other processes used {pct(used).strip()} of a CPU: running it again")
    return min(attempts, key=lambda r: other_cpu(r) or 0.0), len(attempts)


def announce_load(server_cpu: int | None) -> dict:
    """The machine's load before the run (:func:`machine_load`), with a warning on
    stderr when the servers cannot have a CPU of their own or the machine is busy."""
    if server_cpu is None:
        print(
            "aviso: menos de 2 CPUs disponíveis; servidor e gerador de carga vão disputar a mesma CPU",
            file=sys.stderr,
        )
    load = machine_load()
    if load["busy_cpus"] is not None and load["busy_cpus"] > NOISY_OTHER_CPU:
        print(
            f"aviso: a máquina já usa {load['busy_cpus']:.2f} CPU antes do benchmark; os números vão oscilar",
            file=sys.stderr,
        )
    return load


def add_run_arguments(parser: argparse.ArgumentParser, defaults, output: str) -> None:
    """The options both benchmarks share; ``defaults`` is the full run's ``Params``."""
    parser.add_argument("--quick", action="store_true", help="small N and short runs: a smoke test")
    parser.add_argument(
        "--sizes",
        type=int,
        nargs="+",
        help=f"numbers of sessions (default: {' '.join(map(str, defaults.sizes))})",
    )
    parser.add_argument(
        "--repeats", type=int, help=f"runs of each configuration (default: {defaults.repeats})"
    )
    parser.add_argument(
        "--duration", type=float, help=f"seconds measured per run (default: {defaults.duration:g})"
    )
    parser.add_argument(
        "--window-deliveries",
        type=int,
        help=f"deliveries in flight (default: {defaults.window_deliveries})",
    )
    parser.add_argument(
        "--quiet-wait",
        type=float,
        help=f"seconds to wait, at most, for a quiet machine before each run (default: {defaults.quiet_wait:g})",
    )
    parser.add_argument(
        "--noisy-retries",
        type=int,
        help=f"reruns of a run that shared the CPUs with other work (default: {defaults.noisy_retries})",
    )
    parser.add_argument(
        "--loop",
        choices=LOOPS,
        help=f"event loop of every Python server (default: {defaults.loop})",
    )
    parser.add_argument(
        "--output",
        type=Path,
        help=f"directory for {output}.json and .png (default: benchmarks/results, not written with --quick)",
    )


def params_from(parser: argparse.ArgumentParser, args, defaults, quick, results: Path, **more):
    """(params, output directory) from the shared options and ``more`` overrides
    (None: not given); exits through ``parser.error`` on a bad value."""
    overrides = {
        "sizes": tuple(args.sizes) if args.sizes else None,
        "repeats": args.repeats,
        "duration": args.duration,
        "window_deliveries": args.window_deliveries,
        "quiet_wait": args.quiet_wait,
        "noisy_retries": args.noisy_retries,
        "loop": args.loop,
        **more,
    }
    params = quick if args.quick else defaults
    params = dataclasses.replace(params, **{k: v for k, v in overrides.items() if v is not None})
    if (
        any(n < 2 for n in params.sizes)
        or params.repeats < 1
        or params.duration <= 0
        or params.quiet_wait < 0
        or params.noisy_retries < 0
    ):
        parser.error(
            "--sizes precisa de números >= 2, --repeats >= 1, --duration > 0, "
            "--quiet-wait e --noisy-retries >= 0"
        )
    output = args.output if args.output is not None else (None if args.quick else results)
    return params, output
