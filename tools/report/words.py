"""How long the README reads: words outside ``<details>`` blocks, code, comments and tags.

The reader who opens the README sees the short answers; the depth folded into
``<details>``, the code blocks and the HTML tags (anchors) are not part of that first read.
"""

from __future__ import annotations

import re

_FENCE = re.compile(r"^```.*?^```[ \t]*$", re.DOTALL | re.MULTILINE)
_DETAILS = re.compile(r"<details>.*?</details>", re.DOTALL)
_COMMENT = re.compile(r"<!--.*?-->", re.DOTALL)
_TAG = re.compile(r"</?[a-zA-Z][^>]*>")
_WORD = re.compile(r"\w", re.UNICODE)


def visible_words(markdown: str) -> int:
    """Whitespace-separated tokens with a letter or digit, outside details/code/comments/tags."""
    text = _FENCE.sub(" ", markdown)
    text = _DETAILS.sub(" ", text)
    text = _COMMENT.sub(" ", text)
    text = _TAG.sub(" ", text)
    return sum(1 for token in text.split() if _WORD.search(token))
