"""Notebook kernels and the learner who runs cells out of order. A kernel killed with
SIGKILL (a crash, the out-of-memory killer) leaves no process of it behind: chapter 06
starts a Valkey and two chat nodes, and all three die with the kernel (``PR_SET_PDEATHSIG``,
see wslab.chat.testing.process). A cell run out of order says what to run, in one line."""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

import nbformat
import pytest

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
CHAPTER = NOTEBOOKS / "06_passando_de_um_servidor.ipynb"
SETUP_CELL = "2cf4d1a9"  # the cell that starts Valkey and nodes A and B
WAIT = 20.0  # seconds: bound on each cell, and on the processes' death


def _parents() -> dict[int, int]:
    """pid -> parent pid of every process in /proc."""
    table = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:  # gone meanwhile
                continue
            table[int(entry.name)] = int(stat.rpartition(")")[2].split()[1])
    return table


def _descendants(pid: int) -> set[int]:
    parents, found, frontier = _parents(), set(), {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier}
        found |= frontier
    return found


def _alive(pid: int) -> bool:
    """Running, not gone and not a zombie waiting to be reaped."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.skipif(sys.platform != "linux", reason="PR_SET_PDEATHSIG existe só no Linux")
def test_killing_chapter_06_kernel_leaves_no_server_running():
    from jupyter_client.manager import start_new_kernel

    notebook = nbformat.read(CHAPTER, as_version=4)
    ids = [cell.get("id") for cell in notebook.cells]
    setup = notebook.cells[: ids.index(SETUP_CELL) + 1]
    manager, client = start_new_kernel(
        kernel_name="python3",
        cwd=str(NOTEBOOKS),
        extra_arguments=["--IPKernelApp.log_level=ERROR"],  # its TCP warning is noise here
    )
    started: set[int] = set()
    try:
        for cell in setup:
            if cell.cell_type == "code":
                reply = client.execute_interactive(
                    cell.source, timeout=WAIT, output_hook=lambda m: None
                )
                assert reply["content"]["status"] == "ok", reply["content"]
        pids = []
        client.execute_interactive(
            "import os; print(os.getpid())",
            timeout=WAIT,
            output_hook=lambda m: pids.append(m["content"].get("text", "")),
        )
        kernel = int("".join(pids).strip())
        started = _descendants(kernel)
        assert len(started) >= 3, started  # Valkey and the two nodes, at least

        os.kill(kernel, signal.SIGKILL)
        deadline = time.monotonic() + WAIT
        while (left := {pid for pid in started if _alive(pid)}) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert left == set(), f"processos do kernel ainda vivos: {sorted(left)}"
    finally:
        for pid in started:  # if the test failed, leave nothing running anyway
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
        client.stop_channels()
        manager.shutdown_kernel(now=True)


def test_a_cell_run_out_of_order_says_what_to_run_in_one_line():
    from wslab.notebook import OutOfOrder, require

    require(True, "nada")  # a state that holds passes silently
    with pytest.raises(OutOfOrder) as raised:
        require(False, "Os servidores deste capítulo estão parados")
    lines = raised.value._render_traceback_()  # what IPython shows instead of a traceback
    assert lines == [
        "Fora de ordem: Os servidores deste capítulo estão parados: rode o capítulo do início"
        " (Kernel → Restart Kernel and Run All Cells)."
    ]
