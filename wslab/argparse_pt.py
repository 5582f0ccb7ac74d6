"""argparse in Brazilian Portuguese, so a ``--help`` or an error is in one language.

argparse writes some words itself ("usage:", "options", "show this help message and
exit", "(default: …)", "error: the following arguments are required"). The
:class:`ArgumentParser` here writes them in pt-BR: the usage prefix and the defaults
through :class:`HelpFormatter`, the group titles and ``-h`` when it is built, and each
error sentence argparse composes through :func:`translate` (a table of argparse's own
sentences; one it does not know is left as it is). Nothing global is patched.
"""

from __future__ import annotations

import argparse
import re
import sys
from typing import NoReturn

__all__ = ["ArgumentParser", "HelpFormatter", "translate"]

# argparse's error sentences (Python 3.11-3.13), most specific first.
_ERRORS = [
    (r"argument (?P<name>.+?): (?P<rest>.+)", "argumento {name}: {rest}"),
    (r"the following arguments are required: (?P<names>.+)", "faltam argumentos: {names}"),
    (r"one of the arguments (?P<names>.+) is required", "é preciso um dos argumentos {names}"),
    (r"unrecognized arguments: (?P<names>.+)", "argumentos desconhecidos: {names}"),
    (r"not allowed with argument (?P<name>.+)", "não pode ser usado com {name}"),
    (
        r"invalid choice: (?P<value>.+?) \(choose from (?P<choices>.+)\)",
        "escolha inválida: {value} (opções: {choices})",
    ),
    (r"invalid (?P<type>\w+) value: (?P<value>.+)", "valor inválido ({type}): {value}"),
    (r"expected one argument", "falta o valor"),
    (r"expected at most one argument", "espera no máximo um valor"),
    (r"expected at least one argument", "espera pelo menos um valor"),
    (r"expected (?P<n>\d+) arguments?", "espera {n} valores"),
    (
        r"ambiguous option: (?P<option>.+?) could match (?P<matches>.+)",
        "opção ambígua: {option} pode ser {matches}",
    ),
    (r"ignored explicit argument (?P<value>.+)", "valor ignorado: {value}"),
]
_ERRORS = [(re.compile(pattern + r"\Z"), template) for pattern, template in _ERRORS]


def translate(message: str) -> str:
    """One of argparse's error sentences in pt-BR (nested ones too); others unchanged."""
    for pattern, template in _ERRORS:
        if found := pattern.match(message):
            parts = found.groupdict()
            if "rest" in parts:
                parts["rest"] = translate(parts["rest"])
            return template.format(**parts)
    return message


class HelpFormatter(argparse.HelpFormatter):
    """ "uso:" as the usage prefix, and "(padrão: X)" after the help of an option that
    has a default worth saying (not None, not empty, not False)."""

    def add_usage(self, usage, actions, groups, prefix=None) -> None:
        super().add_usage(usage, actions, groups, "uso: " if prefix is None else prefix)

    def _get_help_string(self, action: argparse.Action) -> str:
        help_text = action.help or ""
        default = action.default
        shown = default not in (None, False, argparse.SUPPRESS) and default != []
        if shown and action.option_strings and "%(default)" not in help_text:
            help_text += " (padrão: %(default)s)"
        return help_text


class ArgumentParser(argparse.ArgumentParser):
    """``argparse.ArgumentParser`` that writes its own words in pt-BR (see the module)."""

    def __init__(self, *args, add_help: bool = True, **kwargs) -> None:
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, add_help=False, **kwargs)
        self._positionals.title = "argumentos"
        self._optionals.title = "opções"
        if add_help:
            self.add_argument("-h", "--help", action="help", help="mostra esta ajuda e sai")

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(2, f"{self.prog}: erro: {translate(message)}\n")
