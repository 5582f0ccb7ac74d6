"""The command lines speak one language: argparse's own words in pt-BR too."""

import pytest

from wslab.argparse_pt import translate
from wslab.chat.cli import _parser

ARGPARSE_ENGLISH = ("usage", "options", "default", "show this help", "positional", "error")


@pytest.mark.parametrize("argv", [["--help"], ["serve", "--help"]])
def test_help_has_no_english_word_of_argparse(argv, capsys):
    with pytest.raises(SystemExit) as exited:
        _parser().parse_args(argv)
    out = capsys.readouterr().out
    assert exited.value.code == 0 and out.startswith("uso: python -m wslab.chat")
    assert "mostra esta ajuda e sai" in out and "opções:" in out
    assert not [word for word in ARGPARSE_ENGLISH if word in out.lower()], out
    if "serve" in argv:
        assert "(padrão: 8765)" in out and "(padrão: None)" not in out


@pytest.mark.parametrize(
    "argv, said",
    [
        ([], "erro: faltam argumentos: COMANDO"),
        (["serve", "--db", "a", "--redis", "b"], "argumento --redis: não pode ser usado com --db"),
        (["serve", "--loop", "x"], "argumento --loop: escolha inválida: 'x'"),
        (["serve", "--max-rate", "x"], "argumento --max-rate: valor inválido (float): 'x'"),
        (["serve", "--nope"], "erro: argumentos desconhecidos: --nope"),
        (["serve", "--port"], "argumento --port: falta o valor"),
    ],
)
def test_errors_are_one_pt_br_sentence(argv, said, capsys):
    with pytest.raises(SystemExit) as exited:
        _parser().parse_args(argv)
    err = capsys.readouterr().err
    assert exited.value.code == 2 and said in err and err.startswith("uso: "), err
    assert "error" not in err and "argument " not in err


def test_a_sentence_argparse_does_not_write_is_left_as_it_is():
    assert translate("porta deve ser um número, não 'x'") == "porta deve ser um número, não 'x'"
