"""The report pipeline: answers reach the README only from tagged cells, links resolve, all stays fresh."""

import re
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

import wslab.challenge.answer
from tools.report import links, pipeline, readme
from tools.report.__main__ import STALE_HINT
from tools.report.export import contents_page, exports
from tools.report.words import visible_words

TEMPLATE = """intro
<!-- BEGIN generated:p1-what -->
old text
<!-- END generated:p1-what -->
middle
<!-- BEGIN generated:p2 -->
<!-- END generated:p2 -->
end
"""


def _tagged(cell, *tags):
    cell.metadata["tags"] = list(tags)
    return cell


def test_blocks_are_replaced_and_the_rest_kept():
    text = readme.render_readme(TEMPLATE, {"p1-what": "**new** answer"})
    assert "old text" not in text
    assert (
        "<!-- BEGIN generated:p1-what -->\n**new** answer\n<!-- END generated:p1-what -->" in text
    )
    assert text.startswith("intro\n") and "\nmiddle\n" in text and text.endswith("end\n")


def test_a_question_without_an_answer_stays_empty():
    text = readme.render_readme(TEMPLATE, {})
    assert "<!-- BEGIN generated:p1-what -->\n<!-- END generated:p1-what -->" in text


def test_an_answer_without_a_place_is_an_error():
    with pytest.raises(ValueError, match="p3-tools"):
        readme.render_readme(TEMPLATE, {"p3-tools": "text"})


def test_rendering_twice_changes_nothing():
    once = readme.render_readme(TEMPLATE, {"p2": "a\n\nb"})
    assert readme.render_readme(once, {"p2": "a\n\nb"}) == once


def test_answers_come_from_tagged_markdown_and_markdown_outputs_in_order():
    code = _tagged(new_code_cell("display(...)"), "answer:p2", "nbval-ignore-output")
    code.outputs = [
        new_output("display_data", data={"text/markdown": "from a run", "text/plain": "x"})
    ]
    notebook = new_notebook(
        cells=[
            _tagged(new_markdown_cell("# Title\n\nfirst"), "answer:p2"),
            new_markdown_cell("not an answer"),
            code,
            _tagged(new_markdown_cell("what"), "answer:p1-what"),
        ]
    )
    blocks = readme.answer_blocks({"03_x": notebook})
    assert blocks == {"p2": "# Title\n\nfirst\n\nfrom a run", "p1-what": "what"}


def test_depth_is_folded_after_the_short_answer_with_a_link_to_its_chapter():
    code = _tagged(new_code_cell("display(...)"), "answer:p2")
    code.outputs = [
        new_output(
            "display_data",
            data={
                "text/markdown": f"short from a run\n\n{readme.DETAILS_MARK}\n\ndepth from a run"
            },
        )
    ]
    notebook = new_notebook(
        cells=[
            new_markdown_cell("# 03 · Desafio\n\nintro"),
            _tagged(new_markdown_cell("depth first, see [04](04_y.ipynb)"), "answer-details:p2"),
            code,
        ]
    )
    block = readme.answer_blocks({"03_x": notebook})["p2"]
    short, _, folded = block.partition("<details>")
    assert short.strip() == "short from a run"
    assert folded.index("depth first") < folded.index("depth from a run")
    assert "[04](notebooks/04_y.ipynb)" in folded  # links rewritten for the README's place
    assert "[03 · Desafio](notebooks/03_x.ipynb)" in folded and folded.rstrip().endswith(
        "</details>"
    )


def test_the_answer_module_splits_where_the_pipeline_does():
    assert wslab.challenge.answer.DETAILS_MARK == readme.DETAILS_MARK


def test_summary_links_each_answer_with_its_gist_not_a_copy():
    short = _tagged(
        new_markdown_cell("WebSocket é um protocolo de mensagens. Mais."), "answer:p1-what"
    )
    short.metadata[readme.GIST] = "uma conexão que fica aberta"
    code = _tagged(new_code_cell("display(...)"), "answer:p2")
    notebook = new_notebook(cells=[short, code])
    blocks = {"p1-what": "WebSocket é um protocolo de mensagens. Mais.", "p2": "A mensagem."}
    assert readme.answer_gists({"01_x": notebook}) == {"p1-what": "uma conexão que fica aberta"}
    assert readme.summary_block(blocks, readme.answer_gists({"01_x": notebook})) == (
        "- **[O que são](#p1-what)**: uma conexão que fica aberta\n"
        "- **[A mensagem do servidor](#p2)**"
    )


def test_every_summary_link_has_its_anchor_in_the_readme():
    text = pipeline.README.read_text(encoding="utf-8")
    summary = text.split("<!-- BEGIN generated:summary -->", 1)[1].split("<!-- END", 1)[0]
    targets = re.findall(r"\]\(#([\w.-]+)\)", summary)
    assert targets and all(f'<a id="{key}"></a>' in text for key in targets), targets


def test_index_links_each_notebook_and_its_exports():
    notebook = new_notebook(cells=[new_markdown_cell("# 03 · Desafio\n\ntext")])
    index = readme.index_block({"03_desafio": notebook})
    assert "| 03 · Desafio | [03_desafio.ipynb](notebooks/03_desafio.ipynb) " in index
    assert (
        "(exported/html/03_desafio.html)" in index and "(exported/markdown/03_desafio.md)" in index
    )


@pytest.mark.parametrize(
    "place, sibling, readme_link",
    [
        ("html", "02_b.html", "index.html"),
        ("markdown", "02_b.md", "../../README.md"),
        ("readme", "notebooks/02_b.ipynb", "README.md"),
    ],
)
def test_links_are_rewritten_for_each_place(place, sibling, readme_link):
    text = "[← 02](02_b.ipynb) · [Índice](../README.md) · [RFC](https://x.org/a.ipynb) · [s](#top)"
    assert links.rewrite_markdown(text, place) == (
        f"[← 02]({sibling}) · [Índice]({readme_link}) · [RFC](https://x.org/a.ipynb) · [s](#top)"
    )


def test_exports_hide_tagged_inputs_and_carry_alt_text():
    plot = _tagged(new_code_cell("SECRET_PLOTTING_CODE = 1"), "hide-input")
    plot.metadata["alt"] = "Duas curvas de latência"
    plot.outputs = [
        new_output("display_data", data={"image/png": "iVBORw0KGgo=", "text/plain": "fig"})
    ]
    notebook = new_notebook(cells=[new_markdown_cell("# 01 · A\n\n[next](02_b.ipynb)"), plot])
    files = exports("01_a", notebook, Path("/r"))
    page = files[Path("/r/exported/html/01_a.html")].decode()
    markdown = files[Path("/r/exported/markdown/01_a.md")].decode()
    for text in (page, markdown):
        assert "SECRET_PLOTTING_CODE" not in text and "Duas curvas de latência" in text
    assert 'href="02_b.html"' in page and "(02_b.md)" in markdown
    assert "No description has been provided" not in page


def test_contents_page_lists_every_chapter_in_order():
    chapters = {
        f"0{n}_c": new_notebook(cells=[new_markdown_cell(f"# 0{n} · Cap {n}\n\nResumo {n}.")])
        for n in (1, 2)
    }
    page = contents_page(chapters)
    assert page.index('href="01_c.html"') < page.index('href="02_c.html"') and "Resumo 2." in page


def test_contents_page_renders_the_summaries_markdown():
    chapter = new_notebook(
        cells=[
            new_markdown_cell("# 02 · B\n\nÀ luz da [RFC 6455](https://x.org/r), **byte** a byte.")
        ]
    )
    page = contents_page({"02_b": chapter})
    assert '<a href="https://x.org/r">RFC 6455</a>' in page and "<strong>byte</strong>" in page
    assert "[RFC 6455]" not in page and "**" not in page


def test_html_export_is_self_contained():
    notebook = nbformat.read(pipeline.notebook_paths()[0], as_version=4)
    page = next(
        data for path, data in exports("x", notebook, Path("/r")).items() if path.suffix == ".html"
    )
    assert b"<script src=" not in page


def test_every_figure_in_the_notebooks_has_alt_text():
    missing = [
        f"{path.name} cell {i}"
        for path in pipeline.notebook_paths()
        for i, cell in enumerate(nbformat.read(path, as_version=4).cells)
        if any("image/png" in o.get("data", {}) for o in cell.get("outputs", []))
        and not cell.metadata.get("alt")
    ]
    assert missing == []


def test_every_relative_link_resolves():
    root = pipeline.ROOT
    files = [root / "README.md", *pipeline.notebook_paths(), *pipeline.exported_files()]
    broken = {
        str(path.relative_to(root)): links.broken_links(path)
        for path in files
        if path.suffix in (".md", ".ipynb", ".html") and links.broken_links(path)
    }
    assert broken == {}


def test_words_outside_details_and_code_are_counted():
    text = "one two\n\n```\nnot counted\n```\n<details>\nhidden words\n</details>\n<!-- x y -->\nthree — 4"
    assert visible_words(text) == 4
    assert visible_words('- <a id="p1-what"></a>**one** two') == 2


def test_readme_and_exports_match_the_committed_notebooks():
    assert pipeline.stale() == [], STALE_HINT
