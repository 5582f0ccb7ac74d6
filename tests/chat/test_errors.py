"""wslab.chat.errors: the tree its docstring draws is the tree the code defines, and the
errors that stand for a standard type are that type too."""

from __future__ import annotations

import importlib
import pkgutil
import re

import pytest

import wslab.chat
from wslab.chat import errors
from wslab.chat.errors import (
    BadSetting,
    CloseCode,
    CommandError,
    Refusal,
    StoreError,
    UnknownSession,
)
from wslab.chat.rules.kdf import BadRecord
from wslab.chat.rules.names import BadName, normalize_name
from wslab.chat.rules.text import BadText, checked_text
from wslab.errors import WslabError

_NAME = re.compile(r"[A-Za-z]+")


def drawn_parents() -> dict[str, str | None]:
    """Each class drawn in the docstring's tree -> the class drawn above it (a class's
    column in the drawing is its depth)."""
    tree = errors.__doc__.split("::", 1)[1].split("\n\n")[1]
    parents: dict[str, str | None] = {}
    stack: list[tuple[int, str]] = []  # (column, name) of the classes above this line
    for line in tree.splitlines():
        found = _NAME.search(line)
        assert found, line
        while stack and stack[-1][0] >= found.start():
            stack.pop()
        parents[found.group()] = stack[-1][1] if stack else None
        stack.append((found.start(), found.group()))
    return parents


def defined_errors() -> dict[str, type]:
    """Every subclass of WslabError defined in a module of wslab.chat."""
    found = {}
    for module in pkgutil.walk_packages(wslab.chat.__path__, "wslab.chat."):
        if module.name.endswith("__main__"):
            continue  # runs the CLI
        for value in vars(importlib.import_module(module.name)).values():
            if (
                isinstance(value, type)
                and issubclass(value, WslabError)
                and value.__module__ == module.name
            ):
                found[value.__name__] = value
    return found


def test_every_error_of_the_chat_is_drawn_under_its_parent():
    parents = drawn_parents()
    defined = defined_errors()
    assert set(defined) == set(parents) - {"WslabError"}
    for name, cls in defined.items():
        parent = next(base for base in cls.__mro__[1:] if issubclass(base, WslabError))
        assert parents[name] == parent.__name__, name


def test_user_refusals_are_tree_errors_that_read_as_standard_types():
    with pytest.raises(BadName) as caught:
        normalize_name("nome com espaço")
    assert isinstance(caught.value, Refusal) and isinstance(caught.value, ValueError)
    assert caught.value.close_code == CloseCode.BAD_HELLO
    assert str(caught.value).startswith("Nome de usuário inválido")
    with pytest.raises(BadText) as caught:
        checked_text("a\nb")
    assert isinstance(caught.value, CommandError) and isinstance(caught.value, ValueError)
    assert issubclass(BadSetting, ValueError) and issubclass(BadRecord, StoreError)


def test_an_unknown_session_is_a_key_error_whose_text_is_its_sentence():
    error = UnknownSession("s9")
    assert isinstance(error, KeyError) and error.session_id == "s9"
    assert str(error) == "Sessão desconhecida ou já encerrada: 's9'."
