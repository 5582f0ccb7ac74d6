"""README.md's generated blocks, built only from tagged notebook cells.

A markdown cell tagged ``answer:KEY`` is the short answer to question KEY, copied
as it is; a cell tagged ``answer-details:KEY`` is its depth, folded into a
``<details>`` block that ends with a link to the chapter it came from. A code cell
with either tag contributes its ``text/markdown`` output (for answers that depend
on a run, like Parte 2's); in an ``answer:`` cell's output, what follows a line
DETAILS_MARK is depth. They land between ``<!-- BEGIN generated:KEY -->`` and
``<!-- END generated:KEY -->``; the ``index`` block lists the chapters and the
``summary`` block links each question in SUMMARY to its answer, with the gist the
``answer:`` cell carries in ``metadata["summary"]`` (a phrase, not a copy of the
answer). Everything outside the markers is written by hand, the anchors the summary
links to (``<a id="KEY"></a>`` beside each question) included.
"""

from __future__ import annotations

import re

import nbformat

from tools.report.links import rewrite_markdown

ANSWER_TAG = "answer:"
DETAILS_TAG = "answer-details:"
DETAILS_SUMMARY = "Em detalhe"
DETAILS_MARK = "<!-- details -->"
GIST = "summary"  # the key, in an answer cell's metadata, of its gist for the summary
# The questions the summary near the top of the README covers, with their labels.
SUMMARY = [
    ("p1-what", "O que são"),
    ("p1-how", "Como funcionam"),
    ("p1-when", "Quando usar"),
    ("p2", "A mensagem do servidor"),
    ("p3-technology", "Tecnologia do chat"),
    ("p3-delivery", "Entregas"),
    ("p3-tools", "Ferramentas"),
]

_BLOCK = re.compile(
    r"(<!-- BEGIN generated:(?P<key>[\w.-]+) -->\n)(?P<body>.*?)(<!-- END generated:(?P=key) -->)",
    re.DOTALL,
)


def answer_blocks(notebooks: dict[str, nbformat.NotebookNode]) -> dict[str, str]:
    """README block text per answer key: the short answer, then its folded depth."""
    short: dict[str, list[str]] = {}
    depth: dict[str, list[str]] = {}
    source: dict[str, str] = {}
    for name, notebook in notebooks.items():
        for cell in notebook.cells:
            for tag in cell.get("metadata", {}).get("tags", []):
                if tag.startswith(ANSWER_TAG):
                    key = tag[len(ANSWER_TAG) :]
                    for text in _answer_text(cell):
                        head, _, tail = text.partition(DETAILS_MARK)
                        if head.strip():
                            short.setdefault(key, []).append(head.strip())
                        if tail.strip():
                            depth.setdefault(key, []).append(tail.strip())
                elif tag.startswith(DETAILS_TAG):
                    key = tag[len(DETAILS_TAG) :]
                    depth.setdefault(key, []).extend(_answer_text(cell))
                else:
                    continue
                source.setdefault(key, name)
    blocks = {}
    for key in {**short, **depth}:
        text = "\n\n".join(short.get(key, []))
        if key in depth:
            chapter = source[key]
            link = f"Capítulo completo: [{title(notebooks[chapter])}]({chapter}.ipynb)."  # relative to notebooks/, like the cells
            body = "\n\n".join([*depth[key], link])
            text += f"\n\n<details>\n<summary>{DETAILS_SUMMARY}</summary>\n\n{body}\n\n</details>"
        blocks[key] = rewrite_markdown(text.strip(), "readme")
    return blocks


def _answer_text(cell) -> list[str]:
    if cell.cell_type == "markdown":
        return [cell.source.strip()]
    return [
        output["data"]["text/markdown"].strip()
        for output in cell.get("outputs", [])
        if "text/markdown" in output.get("data", {})
    ]


def answer_gists(notebooks: dict[str, nbformat.NotebookNode]) -> dict[str, str]:
    """The gist of each answer: ``metadata["summary"]`` of its ``answer:`` cell."""
    gists = {}
    for notebook in notebooks.values():
        for cell in notebook.cells:
            gist = cell.get("metadata", {}).get(GIST)
            for tag in cell.get("metadata", {}).get("tags", []):
                if tag.startswith(ANSWER_TAG) and gist:
                    gists.setdefault(tag[len(ANSWER_TAG) :], gist.strip())
    return gists


def summary_block(blocks: dict[str, str], gists: dict[str, str]) -> str:
    """One line per question in SUMMARY: a link to its answer, then the answer's gist."""
    lines = []
    for key, label in SUMMARY:
        if key in blocks:
            gist = f": {gists[key]}" if key in gists else ""
            lines.append(f"- **[{label}](#{key})**{gist}")
    return "\n".join(lines)


def index_block(notebooks: dict[str, nbformat.NotebookNode]) -> str:
    """A table linking each chapter to its notebook and both exports."""
    rows = ["| Capítulo | Notebook | HTML | Markdown |", "|---|---|---|---|"]
    for name, notebook in notebooks.items():
        rows.append(
            f"| {title(notebook)} | [{name}.ipynb](notebooks/{name}.ipynb) "
            f"| [html](exported/html/{name}.html) | [md](exported/markdown/{name}.md) |"
        )
    return "\n".join(rows)


def title(notebook: nbformat.NotebookNode) -> str:
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


def readme_blocks(notebooks: dict[str, nbformat.NotebookNode]) -> dict[str, str]:
    """Every generated block: the chapter index, the answers and their summary."""
    answers = answer_blocks(notebooks)
    summary = summary_block(answers, answer_gists(notebooks))
    return {"index": index_block(notebooks), "summary": summary, **answers}
