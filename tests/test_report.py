"""The report pipeline: answers reach the README only from tagged cells, and stay fresh."""

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from wslab import report

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
    text = report.render_readme(TEMPLATE, {"p1-what": "**new** answer"})
    assert "old text" not in text
    assert "<!-- BEGIN generated:p1-what -->\n**new** answer\n<!-- END generated:p1-what -->" in text
    assert text.startswith("intro\n") and "\nmiddle\n" in text and text.endswith("end\n")


def test_a_question_without_an_answer_stays_empty():
    text = report.render_readme(TEMPLATE, {})
    assert "<!-- BEGIN generated:p1-what -->\n<!-- END generated:p1-what -->" in text


def test_an_answer_without_a_place_is_an_error():
    with pytest.raises(ValueError, match="p3-tools"):
        report.render_readme(TEMPLATE, {"p3-tools": "text"})


def test_rendering_twice_changes_nothing():
    once = report.render_readme(TEMPLATE, {"p2": "a\n\nb"})
    assert report.render_readme(once, {"p2": "a\n\nb"}) == once


def test_answers_come_from_tagged_markdown_and_markdown_outputs_in_order():
    code = _tagged(new_code_cell("display(...)"), "answer:p2", "nbval-ignore-output")
    code.outputs = [new_output("display_data", data={"text/markdown": "from a run", "text/plain": "x"})]
    notebook = new_notebook(cells=[
        _tagged(new_markdown_cell("# Title\n\nfirst"), "answer:p2"),
        new_markdown_cell("not an answer"),
        code,
        _tagged(new_markdown_cell("what"), "answer:p1-what"),
    ])
    blocks = report.answer_blocks({"03_x": notebook})
    assert blocks == {"p2": "# Title\n\nfirst\n\nfrom a run", "p1-what": "what"}


def test_index_links_each_notebook_and_its_exports():
    notebook = new_notebook(cells=[new_markdown_cell("# 03 · Desafio\n\ntext")])
    index = report.index_block({"03_desafio": notebook})
    assert "| 03 · Desafio | [03_desafio.ipynb](notebooks/03_desafio.ipynb) " in index
    assert "(exported/html/03_desafio.html)" in index and "(exported/markdown/03_desafio.md)" in index


def test_html_export_is_self_contained():
    notebook = nbformat.read(report.notebook_paths()[0], as_version=4)
    html = next(data for path, data in report.exports("x", notebook).items() if path.suffix == ".html")
    assert b"<script src=" not in html


def test_readme_and_exports_match_the_committed_notebooks():
    assert report.stale() == []
