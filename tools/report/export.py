"""The exported/ renderings: one HTML and one Markdown file per notebook, and a contents page.

Cells tagged ``figure:NAME`` also leave their figure in exported/figures/. Each
export links its own siblings (see ``links``), leaves out the input of cells
tagged ``hide-input`` (long plotting code, kept in the notebook) and gives every
figure the alt text its cell carries in ``metadata["alt"]``.
"""

from __future__ import annotations

import base64
import copy
import html
from pathlib import Path

import nbformat
from nbconvert import HTMLExporter, MarkdownExporter
from nbconvert.filters import markdown2html
from nbconvert.preprocessors import TagRemovePreprocessor

from tools.report.links import rewrite_markdown
from tools.report.readme import title

TEMPLATES = Path(__file__).resolve().parent / "templates"
HIDE_INPUT_TAG = "hide-input"
FIGURE_TAG = "figure:"  # figure:NAME saves the cell's figure as exported/figures/NAME.png


def _for(notebook: nbformat.NotebookNode, place: str) -> nbformat.NotebookNode:
    """A copy of the notebook whose markdown links point where ``place`` keeps its files."""
    copied = copy.deepcopy(notebook)
    for cell in copied.cells:
        if cell.cell_type == "markdown":
            cell.source = rewrite_markdown(cell.source, place)
    return copied


def _hide_inputs() -> TagRemovePreprocessor:
    return TagRemovePreprocessor(remove_input_tags={HIDE_INPUT_TAG}, enabled=True)


def exports(name: str, notebook: nbformat.NotebookNode, root: Path) -> dict[Path, bytes]:
    """Every file ``root``/exported/ should hold for one notebook: HTML, Markdown, figures."""
    html_exporter = HTMLExporter(
        template_file=str(TEMPLATES / "selfcontained.html.j2"), embed_images=True
    )
    html_exporter.register_preprocessor(_hide_inputs(), enabled=True)
    page, _ = html_exporter.from_notebook_node(_for(notebook, "html"))
    md_exporter = MarkdownExporter(template_file=str(TEMPLATES / "alt.md.j2"))
    md_exporter.register_preprocessor(_hide_inputs(), enabled=True)
    markdown, resources = md_exporter.from_notebook_node(
        _for(notebook, "markdown"), resources={"output_files_dir": f"{name}_files"}
    )
    files = {
        root / "exported" / "html" / f"{name}.html": page.encode("utf-8"),
        root / "exported" / "markdown" / f"{name}.md": markdown.encode("utf-8"),
    }
    for figure, data in resources.get("outputs", {}).items():
        files[root / "exported" / "markdown" / figure] = data
    return files


def figures(notebooks: dict[str, nbformat.NotebookNode], root: Path) -> dict[Path, bytes]:
    """The PNG of each cell tagged ``figure:NAME``, for the README to embed."""
    files = {}
    for notebook in notebooks.values():
        for cell in notebook.cells:
            for tag in cell.get("metadata", {}).get("tags", []):
                if tag.startswith(FIGURE_TAG):
                    png = next(
                        o["data"]["image/png"]
                        for o in cell.outputs
                        if "image/png" in o.get("data", {})
                    )
                    files[root / "exported" / "figures" / f"{tag[len(FIGURE_TAG) :]}.png"] = (
                        base64.b64decode(png)
                    )
    return files


def contents_page(notebooks: dict[str, nbformat.NotebookNode]) -> str:
    """exported/html/index.html: the chapters in order, each with its opening summary.

    Every chapter's "Índice" link leads here (see ``links``). The summary is the
    chapter's Markdown rendered as HTML, its links rewritten for exported/html/.
    """
    items = []
    for name, notebook in notebooks.items():
        summary = markdown2html(rewrite_markdown(_summary(notebook), "html")).strip()
        items.append(f'<li><a href="{name}.html">{html.escape(title(notebook))}</a>{summary}</li>')
    return _PAGE.format(items="\n".join(items))


def _summary(notebook: nbformat.NotebookNode) -> str:
    """The first paragraph after the title of a notebook's first cell, as Markdown."""
    for cell in notebook.cells:
        if cell.cell_type == "markdown" and cell.source.startswith("# "):
            paragraphs = [p for p in cell.source.split("\n\n")[1:] if p and not p.startswith("[")]
            if paragraphs:
                return paragraphs[0].replace("\n", " ")
    return ""


_PAGE = """<!DOCTYPE html>
<html lang="pt-BR">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>wslab — WebSockets em tempo real, estudados em notebooks Python</title>
<style>
body {{ font: 16px/1.5 system-ui, sans-serif; max-width: 46rem; margin: 2rem auto; padding: 0 1rem; color: #222; }}
li {{ margin-bottom: 1rem; }} li p {{ margin: .25rem 0 0; color: #444; }}
a {{ color: #0b5cad; }}
</style>
</head>
<body>
<h1>wslab — WebSockets em tempo real</h1>
<p>Um estudo em notebooks Python executáveis que responde a um teste de estágio sobre WebSockets.
Cada capítulo abaixo é um notebook exportado, com o código e as saídas da última execução; as
respostas curtas do teste estão no <a href="../../README.md">README.md</a> do repositório (em
Markdown, que o GitHub mostra formatado).</p>
<ol>
{items}
</ol>
<p>Também em <a href="../markdown/">Markdown</a> e como <a href="../../notebooks/">notebooks</a>.</p>
</body>
</html>
"""
