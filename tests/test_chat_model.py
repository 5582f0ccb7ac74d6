"""Unit tests for wslab.chat: one test (or a few) per rule of the routing model."""

from __future__ import annotations

import dataclasses
import json

import pytest

from wslab.chat import AuthError, ChatModel, Kind, Message, Notice, Refusal, Session
from wslab.chat.rules.commands import (
    MAX_TEXT_LENGTH,
    CommandError,
    PrivateText,
    PublicText,
    WhoQuery,
    parse_line,
)
from wslab.chat.rules.kdf import CHEAP

EPOCH = "epoch-test"


@pytest.fixture
def model() -> ChatModel:
    return ChatModel(retention=5, epoch=EPOCH, kdf=CHEAP)


def texts(deliveries: list[Message]) -> list[str]:
    return [d.text for d in deliveries]


# -- construction --------------------------------------------------------------------


def test_every_router_gets_a_new_epoch():
    epochs = {ChatModel().epoch for _ in range(20)}
    assert len(epochs) == 20
    assert all(isinstance(e, str) and e for e in epochs)


def test_injected_epoch_is_kept():
    assert ChatModel(epoch="fixed", kdf=CHEAP).epoch == "fixed"


@pytest.mark.parametrize("retention", [-1, 1.5, "10", True, None])
def test_bad_retention_is_rejected(retention):
    with pytest.raises(ValueError, match="retention"):
        ChatModel(retention=retention)


@pytest.mark.parametrize("epoch", ["", 3])
def test_bad_epoch_is_rejected(epoch):
    with pytest.raises(ValueError, match="epoch"):
        ChatModel(epoch=epoch)


# -- names and secrets ---------------------------------------------------------------


def test_names_are_case_insensitive_and_kept_lower_case(model):
    s = model.open("Ana.Maria_2-x", "pw")
    assert s.user == "ana.maria_2-x"
    again = model.open("ANA.MARIA_2-X", "pw")
    assert again.user == "ana.maria_2-x"
    assert model.online() == ["ana.maria_2-x"]


@pytest.mark.parametrize(
    "name", ["", "a" * 33, "ana maria", "joão", "a/b", "ana\n", "\u212a", 7, None, b"ana"]
)
def test_bad_names_are_refused_and_open_nothing(model, name):
    with pytest.raises(Refusal, match="Nome de usuário inválido"):
        model.open(name, "pw")
    assert model.online() == []


def test_name_of_32_characters_is_accepted(model):
    assert model.open("a" * 32, "pw").user == "a" * 32


@pytest.mark.parametrize("secret", ["", None, 123])
def test_empty_or_non_text_secret_is_rejected_and_registers_nothing(model, secret):
    with pytest.raises(Refusal, match="senha"):
        model.open("ana", secret)
    # The name is still free: a later connect registers it with its own secret.
    model.open("ana", "real")
    with pytest.raises(AuthError):
        model.open("ana", "other")


def test_wrong_secret_raises_auth_error_and_opens_nothing(model):
    ana = model.open("ana", "right")
    model.submit(ana.id, "antes")
    with pytest.raises(AuthError, match="Senha errada"):
        model.open("ANA", "wrong")
    model.close(ana.id)
    with pytest.raises(AuthError):
        model.open("ana", "wrong", resume=(EPOCH, 0))
    assert model.online() == []
    model.open("ana", "right")  # the right secret still works
    assert model.online() == ["ana"]


# -- sessions ------------------------------------------------------------------------


def test_session_ids_are_distinct_and_sessions_are_frozen(model):
    a, b = model.open("ana", "pw"), model.open("ana", "pw")
    assert a.id != b.id and a.user == b.user == "ana"
    assert isinstance(a, Session) and a.recovered is False
    with pytest.raises(dataclasses.FrozenInstanceError):
        a.user = "bia"


def test_online_lists_users_with_at_least_one_open_session(model):
    a1, a2 = model.open("ana", "pw"), model.open("ana", "pw")
    b = model.open("bia", "pw")
    model.open("Caio", "pw")
    assert model.online() == ["ana", "bia", "caio"]
    model.close(b.id)
    model.close(a1.id)
    assert model.online() == ["ana", "caio"]
    model.close(a2.id)
    assert model.online() == ["caio"]


def test_unknown_session_raises_key_error_on_submit_and_take(model):
    s = model.open("ana", "pw")
    model.close(s.id)
    for bad in (s.id, "nope", None):
        with pytest.raises(KeyError, match="Sessão desconhecida"):
            model.take(bad)
        with pytest.raises(KeyError):
            model.submit(bad, "oi")


def test_disconnect_of_unknown_or_closed_session_does_nothing(model):
    s = model.open("ana", "pw")
    model.close(s.id)
    model.close(s.id)
    model.close("never")
    model.close(None)
    assert model.online() == []


def test_submit_rejects_non_text(model):
    s = model.open("ana", "pw")
    with pytest.raises(TypeError):
        model.submit(s.id, b"bytes")
    assert model.take(s.id) == []


# -- public messages -----------------------------------------------------------------


def test_public_text_reaches_every_open_session_including_the_sender(model):
    a1, a2 = model.open("ana", "pw"), model.open("ana", "pw")
    j = model.open("joao", "pw")
    model.submit(a1.id, "  bom dia  ")
    expected = Message(Kind.PUBLIC, 1, "ana", None, "bom dia")
    for s in (a1, a2, j):
        assert model.take(s.id) == [expected]
    # one immutable object is shared by every queue
    model.submit(j.id, "oi")
    got = [model.take(s.id)[0] for s in (a1, a2, j)]
    assert got[0] is got[1] is got[2]
    with pytest.raises(dataclasses.FrozenInstanceError):
        got[0].text = "x"


def test_delivery_kind_serializes_as_plain_text(model):
    s = model.open("ana", "pw")
    model.submit(s.id, "oi")
    (d,) = model.take(s.id)
    assert json.loads(json.dumps(dataclasses.asdict(d))) == {
        "kind": "public",
        "offset": 1,
        "sender": "ana",
        "to": None,
        "text": "oi",
    }


def test_offsets_start_at_one_and_grow_by_one_across_kinds(model):
    a, b = model.open("ana", "pw"), model.open("bia", "pw")
    model.submit(a.id, "um")
    model.submit(a.id, "/msg bia dois")
    model.submit(b.id, "/who")
    model.submit(b.id, "tres")
    assert [getattr(d, "offset", None) for d in model.take(b.id)] == [1, 2, None, 3]
    assert model.newest_offset == 3


def test_take_clears_the_queue_and_returns_oldest_first(model):
    a = model.open("ana", "pw")
    for word in ("um", "dois", "tres"):
        model.submit(a.id, word)
    assert texts(model.take(a.id)) == ["um", "dois", "tres"]
    assert model.take(a.id) == []


def test_closed_sessions_receive_nothing_and_new_ones_start_from_now(model):
    a = model.open("ana", "pw")
    b = model.open("bia", "pw")
    model.close(b.id)
    model.submit(a.id, "antes")
    b2 = model.open("bia", "pw")
    assert model.take(b2.id) == []
    model.submit(a.id, "depois")
    assert texts(model.take(b2.id)) == ["depois"]


# -- private messages ----------------------------------------------------------------


def test_private_reaches_all_sessions_of_both_users_and_nobody_else(model):
    a1, a2 = model.open("ana", "pw"), model.open("ana", "pw")
    j1, j2 = model.open("joao", "pw"), model.open("joao", "pw")
    b = model.open("bia", "pw")
    model.submit(a1.id, "/msg JOAO   oi, tudo bem?")
    expected = [Message(Kind.PRIVATE, 1, "ana", "joao", "oi, tudo bem?")]
    for s in (a1, a2, j1, j2):
        assert model.take(s.id) == expected
    assert model.take(b.id) == []


def test_private_to_oneself_reaches_each_own_session_once(model):
    a1, a2 = model.open("ana", "pw"), model.open("ana", "pw")
    b = model.open("bia", "pw")
    model.submit(a2.id, "/msg ana lembrete")
    for s in (a1, a2):
        assert model.take(s.id) == [Message(Kind.PRIVATE, 1, "ana", "ana", "lembrete")]
    assert model.take(b.id) == []


def test_private_to_registered_offline_user_arrives_on_resume(model):
    j = model.open("joao", "pw")
    model.close(j.id)
    a = model.open("ana", "pw")
    model.submit(a.id, "/msg joao quando voltar, leia")
    model.submit(a.id, "/msg ana nota")  # not for joao
    assert texts(model.take(a.id)) == ["quando voltar, leia", "nota"]
    back = model.open("joao", "pw", resume=(EPOCH, 0))
    assert back.recovered is True
    assert model.take(back.id) == [Message(Kind.PRIVATE, 1, "ana", "joao", "quando voltar, leia")]


# -- /who and bad input --------------------------------------------------------------


def test_who_answers_only_the_asking_session(model):
    a1, a2 = model.open("ana", "pw"), model.open("ana", "pw")
    model.open("bia", "pw")
    model.submit(a1.id, "/WHO")
    assert model.take(a1.id) == [Notice(Kind.SYSTEM, "Online agora: ana, bia.")]
    assert model.take(a2.id) == []
    assert model.newest_offset == 0


@pytest.mark.parametrize(
    ("line", "fragment"),
    [
        ("", "Mensagem vazia"),
        ("   \t ", "Mensagem vazia"),
        ("/msg", "falta o nome do destinatário"),
        ("/msg   ", "falta o nome do destinatário"),
        ("/msg bia", "falta o texto"),
        ("/msg bia    ", "falta o texto"),
        ("/msg ninguem oi", "O usuário 'ninguem' não existe"),
        ("/msg jo@o oi", "Não existe usuário chamado 'jo@o'"),
        ("/kick bia", "Comando desconhecido: /kick"),
        ("/", "Comando desconhecido"),
        ("/who bia", "não recebe argumentos"),
        ("x" * (MAX_TEXT_LENGTH + 1), "Mensagem longa demais: 2001 caracteres"),
        ("/msg bia " + "x" * (MAX_TEXT_LENGTH + 1), "longa demais"),
    ],
)
def test_bad_input_queues_one_error_to_its_origin_only_and_keeps_nothing(model, line, fragment):
    a1, a2 = model.open("ana", "pw"), model.open("ana", "pw")
    b = model.open("bia", "pw")
    model.submit(a1.id, line)
    (error,) = model.take(a1.id)
    assert isinstance(error, Notice) and error.kind == Kind.ERROR
    assert fragment in error.text
    assert model.take(a2.id) == [] and model.take(b.id) == []
    assert model.newest_offset == 0
    model.submit(b.id, "seguinte")
    assert [d.offset for d in model.take(a1.id)] == [1]


def test_text_of_exactly_the_limit_is_accepted(model):
    a = model.open("ana", "pw")
    model.submit(a.id, "x" * MAX_TEXT_LENGTH)
    assert model.take(a.id)[0].offset == 1


def test_parse_line_commands():
    assert parse_line(" oi ") == PublicText("oi")
    assert parse_line("/msg\tjoao\toi  tudo bem") == PrivateText("joao", "oi  tudo bem")
    assert parse_line("/msg Joao  oi  você ") == PrivateText("joao", "oi  você")
    assert parse_line("/who") == WhoQuery()
    with pytest.raises(CommandError):
        parse_line("/nope")
    with pytest.raises(TypeError):
        parse_line(None)


# -- resume --------------------------------------------------------------------------


def _fill(model: ChatModel, n: int) -> Session:
    writer = model.open("writer", "pw")
    for i in range(1, n + 1):
        model.submit(writer.id, f"m{i}")
    model.take(writer.id)
    return writer


def test_resume_within_history_replays_exactly_what_was_missed(model):
    _fill(model, 4)
    s = model.open("ana", "pw", resume=(EPOCH, 2))
    assert s.recovered is True
    assert [(d.offset, d.text) for d in model.take(s.id)] == [(3, "m3"), (4, "m4")]


def test_resume_at_newest_offset_recovers_with_nothing_to_replay(model):
    _fill(model, 3)
    s = model.open("ana", "pw", resume=(EPOCH, 3))
    assert s.recovered is True and model.take(s.id) == []


def test_resume_then_live_messages_keep_increasing_offsets(model):
    writer = _fill(model, 3)
    s = model.open("ana", "pw", resume=(EPOCH, 1))
    model.submit(writer.id, "m4")
    assert [d.offset for d in model.take(s.id)] == [2, 3, 4]


def test_resume_beyond_retention_announces_gap_and_replays_what_is_left(model):
    _fill(model, 8)  # retention 5 keeps offsets 4..8
    s = model.open("ana", "pw", resume=(EPOCH, 1))
    assert s.recovered is False
    notice, *rest = model.take(s.id)
    assert notice.kind == Kind.SYSTEM and "perdido" in notice.text
    assert [d.offset for d in rest] == [4, 5, 6, 7, 8]


def test_resume_exactly_at_the_retention_edge_recovers(model):
    _fill(model, 8)  # 4..8 kept: offset 3 missed only kept ones
    s = model.open("ana", "pw", resume=(EPOCH, 3))
    assert s.recovered is True
    assert [d.offset for d in model.take(s.id)] == [4, 5, 6, 7, 8]


def test_resume_from_another_epoch_replays_all_visible_history():
    model = ChatModel(retention=10, epoch="new", kdf=CHEAP)
    a = model.open("ana", "pw")
    model.open("bia", "pw")
    model.submit(a.id, "publica")
    model.submit(a.id, "/msg bia segredo")
    model.submit(a.id, "/msg ana nota")
    s = model.open("bia", "pw", resume=("old", 99))
    assert s.recovered is False
    notice, *rest = model.take(s.id)
    assert notice.kind == Kind.SYSTEM and "época" in notice.text
    assert texts(rest) == ["publica", "segredo"]


def test_resume_replays_only_messages_the_user_may_see(model):
    a = model.open("ana", "pw")
    model.open("bia", "pw")
    model.open("joao", "pw")
    model.submit(a.id, "/msg bia so para bia")
    model.submit(a.id, "todos")
    s = model.open("joao", "pw", resume=(EPOCH, 0))
    assert s.recovered is True
    assert texts(model.take(s.id)) == ["todos"]


def test_resume_with_zero_retention():
    model = ChatModel(retention=0, epoch=EPOCH, kdf=CHEAP)
    s0 = model.open("ana", "pw", resume=(EPOCH, 0))
    assert s0.recovered is True
    model.submit(s0.id, "oi")
    s = model.open("ana", "pw", resume=(EPOCH, 0))
    assert s.recovered is False
    assert [d.kind for d in model.take(s.id)] == [Kind.SYSTEM]


def test_resume_offset_above_newest_is_unrecoverable_and_says_so(model):
    """A store restored from an older copy: never a clean recovery."""
    _fill(model, 2)
    s = model.open("ana", "pw", resume=(EPOCH, 3))
    assert s.recovered is False
    notice, *replay = model.take(s.id)
    assert notice.kind is Kind.SYSTEM and "além da mensagem mais nova" in notice.text
    assert [d.offset for d in replay] == [1, 2]  # the newest messages history holds


@pytest.mark.parametrize(
    "resume", [(EPOCH,), (EPOCH, -1), (EPOCH, "3"), (EPOCH, 1.0), (EPOCH, True), (1, 1), "x", 5]
)
def test_malformed_resume_is_refused(model, resume):
    with pytest.raises(Refusal, match="resume"):
        model.open("ana", "pw", resume=resume)
    assert model.online() == []


def test_resume_accepts_a_list_as_sent_by_json(model):
    _fill(model, 1)
    assert model.open("ana", "pw", resume=[EPOCH, 0]).recovered is True


# -- submit names the sessions it queued for (what a network adapter flushes) --------


def test_submit_returns_the_sessions_that_got_something(model):
    a1, a2 = model.open("ana", "pw"), model.open("ana", "pw")
    j = model.open("joao", "pw")
    b = model.open("bia", "pw")
    assert model.submit(b.id, "oi") == [a1.id, a2.id, j.id, b.id]
    assert sorted(model.submit(a2.id, "/msg joao oi")) == sorted([a1.id, a2.id, j.id])
    assert sorted(model.submit(a1.id, "/msg ana nota")) == sorted([a1.id, a2.id])
    assert model.submit(j.id, "/who") == [j.id]
    assert model.submit(j.id, "/msg ninguem oi") == [j.id]
    model.close(a2.id)
    assert sorted(model.submit(b.id, "/msg ana de novo")) == sorted([a1.id, b.id])


def test_submit_to_offline_user_names_only_the_senders_sessions(model):
    j = model.open("joao", "pw")
    model.close(j.id)
    a = model.open("ana", "pw")
    assert model.submit(a.id, "/msg joao depois") == [a.id]
