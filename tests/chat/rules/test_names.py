"""User names (wslab.chat.rules.names): case-insensitive, kept lower-case, 1 to 32
characters of a small ASCII alphabet; anything else refused with one pt-BR sentence."""

import pytest

from wslab.chat.rules.names import MAX_NAME_LENGTH, normalize_name


@pytest.mark.parametrize(
    ("typed", "kept"),
    [
        ("ana", "ana"),
        ("Ana.Maria_2-x", "ana.maria_2-x"),
        ("JOAO", "joao"),
        ("a" * MAX_NAME_LENGTH, "a" * MAX_NAME_LENGTH),
        ("0", "0"),
        ("-._", "-._"),
    ],
)
def test_a_name_is_kept_lower_case(typed, kept):
    assert normalize_name(typed) == kept


@pytest.mark.parametrize(
    "name",
    [
        "",
        "a" * (MAX_NAME_LENGTH + 1),
        "ana maria",  # a space
        "joão",  # a letter outside ASCII
        "\u212a",  # the Kelvin sign: "K".lower() would make it an ASCII "k"
        "ana\n",
        "ana\x00",
        "a/b",
        "@ana",
        7,
        None,
        b"ana",
    ],
)
def test_anything_else_is_refused_with_the_rule_in_portuguese(name):
    with pytest.raises(ValueError) as refused:
        normalize_name(name)
    assert str(refused.value) == (
        f"Nome de usuário inválido: {name!r}. Use de 1 a 32 caracteres entre letras "
        "a-z, dígitos 0-9, '_', '.' e '-'."
    )


def test_names_that_differ_only_in_case_are_one_name():
    assert len({normalize_name(n) for n in ("bia", "Bia", "BIA", "bIa")}) == 1
