"""The report pipeline: execute the notebooks, export them, regenerate the README.

    python -m wslab.report build   # what `make report` runs
    python -m wslab.report build 03_desafio_servidor   # execute only that one, export all
    python -m wslab.report check   # exit 1 when README or exported/ lag the notebooks

Answers reach the README only from the notebooks: a markdown cell tagged
``answer:KEY`` is copied verbatim, and a code cell with that tag contributes its
``text/markdown`` output (for answers that depend on a run, like Parte 2's). They
land between ``<!-- BEGIN generated:KEY -->`` and ``<!-- END generated:KEY -->`` in
README.md; the ``index`` block lists the chapters. Everything outside the markers
is written by hand.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbconvert import HTMLExporter, MarkdownExporter

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
EXPORTED = ROOT / "exported"
README = ROOT / "README.md"
ANSWER_TAG = "answer:"
HTML_TEMPLATE = Path(__file__).resolve().parent / "templates" / "selfcontained.html.j2"
CELL_TIMEOUT = 300  # seconds; a live attempt is bounded well below this

_BLOCK = re.compile(
    r"(<!-- BEGIN generated:(?P<key>[\w.-]+) -->\n)(?P<body>.*?)(<!-- END generated:(?P=key) -->)",
    re.DOTALL,
)


def notebook_paths() -> list[Path]:
    """The chapters, in reading order (their names start with a number)."""
    return sorted(NOTEBOOKS.glob("[0-9]*.ipynb"))


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


def exports(name: str, notebook: nbformat.NotebookNode) -> dict[Path, bytes]:
    """Every file exported/ should hold for one notebook: HTML, Markdown, figures."""
    html, _ = HTMLExporter(template_file=str(HTML_TEMPLATE), embed_images=True).from_notebook_node(notebook)
    figures_dir = f"{name}_files"
    markdown, resources = MarkdownExporter().from_notebook_node(
        notebook, resources={"output_files_dir": figures_dir}
    )
    files = {
        EXPORTED / "html" / f"{name}.html": html.encode("utf-8"),
        EXPORTED / "markdown" / f"{name}.md": markdown.encode("utf-8"),
    }
    for figure, data in resources.get("outputs", {}).items():
        files[EXPORTED / "markdown" / figure] = data
    return files


def answer_blocks(notebooks: dict[str, nbformat.NotebookNode]) -> dict[str, str]:
    """README block text per answer key, in chapter and cell order."""
    parts: dict[str, list[str]] = {}
    for notebook in notebooks.values():
        for cell in notebook.cells:
            for tag in cell.get("metadata", {}).get("tags", []):
                if tag.startswith(ANSWER_TAG):
                    key = tag[len(ANSWER_TAG) :]
                    parts.setdefault(key, []).extend(_answer_text(cell))
    return {key: "\n\n".join(texts) for key, texts in parts.items()}


def _answer_text(cell) -> list[str]:
    if cell.cell_type == "markdown":
        return [cell.source.strip()]
    return [
        output["data"]["text/markdown"].strip()
        for output in cell.get("outputs", [])
        if "text/markdown" in output.get("data", {})
    ]


def index_block(notebooks: dict[str, nbformat.NotebookNode]) -> str:
    """A table linking each chapter to its notebook and both exports."""
    rows = ["| Capítulo | Notebook | HTML | Markdown |", "|---|---|---|---|"]
    for name, notebook in notebooks.items():
        rows.append(
            f"| {_title(notebook)} | [{name}.ipynb](notebooks/{name}.ipynb) "
            f"| [html](exported/html/{name}.html) | [md](exported/markdown/{name}.md) |"
        )
    return "\n".join(rows)


def _title(notebook: nbformat.NotebookNode) -> str:
    for cell in notebook.cells:
        if cell.cell_type == "markdown":
            for line in cell.source.splitlines():
                if line.startswith("# "):
                    return line[2:].strip()
    return "(sem título)"


def render_readme(text: str, blocks: dict[str, str]) -> str:
    """Replace every generated block; a key with no content leaves the block empty."""
    found = {match["key"] for match in _BLOCK.finditer(text)}
    missing = sorted(set(blocks) - found)
    if missing:
        raise ValueError(f"README.md has no block for: {', '.join(missing)}")

    def fill(match: re.Match) -> str:
        body = blocks.get(match["key"], "").strip()
        return match.group(1) + (body + "\n" if body else "") + match.group(4)

    return _BLOCK.sub(fill, text)


def expected_readme(notebooks: dict[str, nbformat.NotebookNode]) -> str:
    blocks = {"index": index_block(notebooks), **answer_blocks(notebooks)}
    return render_readme(README.read_text(encoding="utf-8"), blocks)


def read_notebooks() -> dict[str, nbformat.NotebookNode]:
    return {path.stem: nbformat.read(path, as_version=4) for path in notebook_paths()}


def stale() -> list[str]:
    """What in README.md and exported/ disagrees with the committed notebooks."""
    notebooks = read_notebooks()
    problems = []
    if README.read_text(encoding="utf-8") != expected_readme(notebooks):
        problems.append("README.md: generated blocks differ from the notebooks")
    expected: dict[Path, bytes] = {}
    for name, notebook in notebooks.items():
        expected.update(exports(name, notebook))
    for path, data in expected.items():
        if not path.exists() or path.read_bytes() != data:
            problems.append(f"{path.relative_to(ROOT)}: missing or out of date")
    for path in _exported_files():
        if path not in expected:
            problems.append(f"{path.relative_to(ROOT)}: no notebook produces it any more")
    return problems


def _exported_files() -> list[Path]:
    return [p for d in ("html", "markdown") for p in (EXPORTED / d).rglob("*") if p.is_file()]


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
    for path in _exported_files():
        path.unlink()
    for name, notebook in notebooks.items():
        for path, data in exports(name, notebook).items():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
    README.write_text(expected_readme(notebooks), encoding="utf-8")
    print(f"exported/ and README.md regenerated from {len(notebooks)} notebooks")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m wslab.report")
    parser.add_argument("command", choices=["build", "check"])
    parser.add_argument("notebooks", nargs="*", help="build: execute only these (names without .ipynb)")
    args = parser.parse_args(argv)
    if args.command == "build":
        build(args.notebooks)
        return 0
    problems = stale()
    for problem in problems:
        print(problem)
    if problems:
        print("Run `make report` and commit notebooks/, exported/ and README.md.")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
