"""Relative links, rewritten for where a text lands and checked to resolve.

Notebooks link each other as ``02_x.ipynb`` and the README as ``../README.md``
(relative to notebooks/). The same prose is copied into the README (at the root)
and exported to exported/html/ and exported/markdown/, so each copy gets the links
of its own place: the HTML links the HTML chapters, the Markdown the Markdown ones.
In the HTML export the README becomes the contents page (``index.html``): a browser
shows a linked README.md as raw Markdown.
"""

from __future__ import annotations

import posixpath
import re
from pathlib import Path

_MD_LINK = re.compile(r"(!?\[[^\]]*\]\()([^)\s]+)(\))")
_HTML_LINK = re.compile(r"""\b(?:href|src)=["']([^"']+)["']""")
CONTENTS_PAGE = "index.html"  # exported/html/'s contents page, built by export.contents_page
_EXTERNAL = re.compile(r"^(?:[a-z][a-z0-9+.-]*:|#|//)", re.IGNORECASE)


def is_relative(target: str) -> bool:
    return bool(target) and not _EXTERNAL.match(target)


def rewrite_markdown(text: str, place: str) -> str:
    """Rewrite the relative links of notebook markdown for ``place``.

    ``place`` is "readme" (README.md at the root), "html" (exported/html/) or
    "markdown" (exported/markdown/).
    """

    def fix(match: re.Match) -> str:
        return match.group(1) + relocate(match.group(2), place) + match.group(3)

    return _MD_LINK.sub(fix, text)


def relocate(target: str, place: str) -> str:
    """One link written from notebooks/, as seen from ``place``."""
    if not is_relative(target):
        return target
    path, hash_, fragment = target.partition("#")
    from_root = posixpath.normpath(posixpath.join("notebooks", path))  # e.g. README.md
    stem, ext = posixpath.splitext(from_root)
    if place == "readme":
        return from_root + hash_ + fragment
    if place not in ("html", "markdown"):
        raise ValueError(f"unknown place: {place}")
    if place == "html" and from_root == "README.md":
        return CONTENTS_PAGE  # the README's anchors are not on that page: the fragment goes
    if ext == ".ipynb" and posixpath.dirname(from_root) == "notebooks":
        sibling = posixpath.basename(stem) + (".html" if place == "html" else ".md")
        return sibling + hash_ + fragment
    return posixpath.join("..", "..", from_root) + hash_ + fragment


def relative_links(path: Path) -> list[str]:
    """Every relative link target in a Markdown, notebook or HTML file (fragments dropped)."""
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".ipynb":
        import nbformat

        notebook = nbformat.reads(text, as_version=4)
        text = "\n".join(c.source for c in notebook.cells if c.cell_type == "markdown")
    if path.suffix == ".html":
        targets = _HTML_LINK.findall(text)
    else:
        targets = [m.group(2) for m in _MD_LINK.finditer(_strip_code(text))]
        targets += _HTML_LINK.findall(text)
    return [t.partition("#")[0] for t in targets if is_relative(t) and t.partition("#")[0]]


def broken_links(path: Path) -> list[str]:
    """The relative links in ``path`` that point at no file."""
    return [t for t in relative_links(path) if not (path.parent / t).exists()]


def _strip_code(markdown: str) -> str:
    return re.sub(r"^```.*?^```", "", markdown, flags=re.DOTALL | re.MULTILINE)
