"""What a chapter's cells check before they touch state an earlier cell made.

A learner runs cells again, out of order, or after the cell that stops the servers.
:func:`require` turns such a state check into one pt-BR sentence saying what to run
(``rode o capítulo do início``), shown by IPython without a traceback, instead of a
bare ``AssertionError`` or a 30-line ``ConnectionClosedOK``.
"""

from __future__ import annotations

from .errors import WslabError

__all__ = ["OutOfOrder", "require"]

RUN_FROM_THE_START = "rode o capítulo do início (Kernel → Restart Kernel and Run All Cells)"


class OutOfOrder(WslabError):
    """A cell run before (or after) the cells it depends on; ``str(self)`` says what to run."""

    def _render_traceback_(self) -> list[str]:
        """IPython shows these lines instead of the traceback: the sentence is the message."""
        return [f"Fora de ordem: {self}"]


def require(condition: bool, what: str) -> None:
    """Raise :class:`OutOfOrder` ("WHAT: rode o capítulo do início …") unless ``condition``."""
    if not condition:
        raise OutOfOrder(f"{what}: {RUN_FROM_THE_START}.")
