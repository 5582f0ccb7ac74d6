"""Log lines a client cannot flood or forge.

- :func:`shown`: every client-supplied value in a log line goes through it: escaped
  (``repr``, so a newline cannot fake a second line) and cut to a few dozen characters.
- :class:`Summarizer`: a logging filter that lets the first ``burst`` records of each
  kind (logger and message template) through per ``window`` seconds and counts the
  rest, reporting the count once in the next record of that kind that passes; it also
  drops tracebacks from the libraries' loggers (asyncio's "socket.accept() out of
  system resource", websockets' handshake failures): one line each, never a traceback.
"""

from __future__ import annotations

import logging
import time

__all__ = ["Summarizer", "quiet_libraries", "shown"]


def shown(value: object, limit: int = 60) -> str:
    """``value`` for a log line: escaped, and cut to ``limit`` characters."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


class Summarizer(logging.Filter):
    """Lets ``burst`` records of each kind through per ``window`` seconds; counts the
    others and says how many were left out in the next one that passes."""

    def __init__(self, burst: int = 20, window: float = 10.0, clock=time.monotonic) -> None:
        super().__init__()
        self.burst, self.window, self._clock = burst, window, clock
        self._kinds: dict[tuple[str, object], list] = {}  # kind -> [start, passed, dropped]

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.name.startswith("wslab"):
            record.exc_info = record.exc_text = None  # one line, never a traceback
        now = self._clock()
        kind = (record.name, record.msg)
        entry = self._kinds.get(kind)
        if entry is None or now - entry[0] >= self.window:
            dropped = entry[2] if entry else 0
            if len(self._kinds) > 1000:
                self._kinds.clear()  # kinds are templates: a bounded set in practice
            entry = self._kinds[kind] = [now, 0, 0]
            if dropped:
                record.msg = f"{record.msg} (e mais {dropped} iguais omitidas)"
        if entry[1] >= self.burst:
            entry[2] += 1
            return False
        entry[1] += 1
        return True


def quiet_libraries(handler: logging.Handler) -> None:
    """Put one :class:`Summarizer` on ``handler`` (it sees wslab's, websockets' and
    asyncio's records)."""
    handler.addFilter(Summarizer())
