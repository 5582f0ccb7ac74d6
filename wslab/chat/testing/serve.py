"""``python -m wslab.chat serve`` as a real process, for tests and notebooks: started on
loopback, ready once it says where it serves, stopped by PID, dead with its parent.

On Linux the child asks the kernel for SIGKILL when the thread that started it exits
(``PR_SET_PDEATHSIG``, set between fork and exec): a notebook kernel killed with
SIGKILL (a crash, the out-of-memory killer) takes its servers with it instead of
leaving them re-parented to PID 1 and holding their ports. Start and stop from the
same thread: the signal follows the starting *thread*, not the process.

Every wait is bounded (``wait`` seconds to start, ``timeout`` to stop). The process's
log (stderr) is drained by a daemon thread once it is ready, so a chatty server never
blocks on a full pipe.
"""

from __future__ import annotations

import re
import select
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from ...errors import WslabError
from .process import popen_dying_with_parent

__all__ = ["ServeError", "ServeProcess"]

#: The line ``serve`` logs once it listens (wslab.chat.cli).
READY = re.compile(r"servindo o chat em http://127\.0\.0\.1:(\d+)/")


class ServeError(WslabError):
    """The server process did not start (pt-BR sentence, with the tail of its log)."""


class ServeProcess:
    """``python -m wslab.chat serve OPTIONS`` on 127.0.0.1, as a child process.

    ``options`` are ``serve``'s own (``--port 0`` is added first, so a later ``--port``
    wins). ``url`` (the page) and ``ws_url`` are known once :meth:`start` returns.
    """

    def __init__(self, *options: str, cwd: str | Path | None = None, wait: float = 12.0) -> None:
        self.options, self.cwd, self.wait = options, cwd, wait
        self.process: subprocess.Popen | None = None
        self.port: int | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    @property
    def pid(self) -> int | None:
        return None if self.process is None else self.process.pid

    def running(self) -> bool:
        """Started and not exited (killed, stopped, or dead with its parent)."""
        return self.process is not None and self.process.poll() is None

    def start(self) -> ServeProcess:
        """Start it and wait (at most ``wait`` s) for the line that says it listens."""
        self.process = popen_dying_with_parent(
            [sys.executable, "-m", "wslab.chat", "serve", "--port", "0", *self.options],
            cwd=self.cwd,
            stdin=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        log: list[str] = []
        deadline = time.monotonic() + self.wait
        while (left := deadline - time.monotonic()) > 0:
            ready, _, _ = select.select([self.process.stderr], [], [], left)
            line = self.process.stderr.readline() if ready else ""
            if found := READY.search(line):
                self.port = int(found.group(1))
                threading.Thread(target=self.process.stderr.read, daemon=True).start()
                return self
            if not line:
                break
            log.append(line.rstrip())
        self.process.kill()
        self.process.wait(self.wait)
        tail = " / ".join(log[-3:]) or "nada no log"
        raise ServeError(f"O servidor do chat não começou em {self.wait:g} s ({tail}).")

    def kill(self, timeout: float = 5.0) -> int:
        """SIGKILL: no close frame, no chance to write anything more; the exit status."""
        self.process.send_signal(signal.SIGKILL)
        return self.process.wait(timeout)

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM (1001 to every connection, then exit 0); SIGKILL after ``timeout`` s."""
        if self.process is None or self.process.poll() is not None:
            return None if self.process is None else self.process.returncode
        self.process.terminate()
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            return self.kill()

    def __enter__(self) -> ServeProcess:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()
