"""Execute the notebooks in place, then rewrite exported/ and the README from them."""

from __future__ import annotations

import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

from tools.report.export import contents_page, exports, figures
from tools.report.links import CONTENTS_PAGE
from tools.report.readme import readme_blocks, render_readme

ROOT = Path(__file__).resolve().parent.parent.parent
NOTEBOOKS = ROOT / "notebooks"
EXPORTED = ROOT / "exported"
README = ROOT / "README.md"
CONTENTS = EXPORTED / "html" / CONTENTS_PAGE
CELL_TIMEOUT = 300  # seconds; a live attempt is bounded well below this


def notebook_paths() -> list[Path]:
    """The chapters, in reading order (their names start with a number)."""
    return sorted(NOTEBOOKS.glob("[0-9]*.ipynb"))


def read_notebooks() -> dict[str, nbformat.NotebookNode]:
    return {path.stem: nbformat.read(path, as_version=4) for path in notebook_paths()}


def execute(path: Path) -> nbformat.NotebookNode:
    """Run a notebook top to bottom in a fresh kernel, cwd = notebooks/."""
    notebook = nbformat.read(path, as_version=4)
    NotebookClient(
        notebook,
        timeout=CELL_TIMEOUT,
        kernel_name="python3",
        resources={"metadata": {"path": str(path.parent)}},
        record_timing=False,
        # loopback-only kernel; its warning about unencrypted local TCP is noise here
        extra_arguments=["--IPKernelApp.log_level=ERROR"],
    ).execute()
    return notebook


def expected_readme(notebooks: dict[str, nbformat.NotebookNode]) -> str:
    return render_readme(README.read_text(encoding="utf-8"), readme_blocks(notebooks))


def expected_exports(notebooks: dict[str, nbformat.NotebookNode]) -> dict[Path, bytes]:
    """Every file exported/html, exported/markdown and exported/figures should hold."""
    files = {CONTENTS: contents_page(notebooks).encode("utf-8"), **figures(notebooks, ROOT)}
    for name, notebook in notebooks.items():
        files.update(exports(name, notebook, ROOT))
    return files


def stale() -> list[str]:
    """What in README.md and exported/ disagrees with the committed notebooks."""
    notebooks = read_notebooks()
    problems = []
    if README.read_text(encoding="utf-8") != expected_readme(notebooks):
        problems.append("README.md: generated blocks differ from the notebooks")
    expected = expected_exports(notebooks)
    for path, data in expected.items():
        if not path.exists() or path.read_bytes() != data:
            problems.append(f"{path.relative_to(ROOT)}: missing or out of date")
    for path in exported_files():
        if path not in expected:
            problems.append(f"{path.relative_to(ROOT)}: no notebook produces it any more")
    return problems


def exported_files() -> list[Path]:
    return [
        p for d in ("html", "markdown", "figures") for p in (EXPORTED / d).rglob("*") if p.is_file()
    ]


def build(only: list[str] | None = None) -> None:
    """Execute the notebooks in place (all, or those named), then rewrite exported/ and the README."""
    paths = notebook_paths()
    unknown = set(only or ()) - {path.stem for path in paths}
    if unknown:
        raise SystemExit(f"no such notebook: {', '.join(sorted(unknown))}")
    for path in paths:
        if only and path.stem not in only:
            continue
        started = time.perf_counter()
        nbformat.write(execute(path), path)
        print(f"{path.name:40s} {time.perf_counter() - started:6.1f} s", flush=True)
    notebooks = read_notebooks()
    for path in exported_files():
        path.unlink()
    for path, data in expected_exports(notebooks).items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    README.write_text(expected_readme(notebooks), encoding="utf-8")
    print(f"exported/ and README.md regenerated from {len(notebooks)} notebooks")
