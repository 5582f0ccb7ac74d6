"""Unit tests for wslab.chat: one test (or a few) per rule of the routing model."""

from __future__ import annotations

import dataclasses
import json

import pytest

from wslab.chat import AuthError, ChatRouter, Delivery, DeliveryKind, Refusal, Session
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
def router() -> ChatRouter:
    return ChatRouter(retention=5, epoch=EPOCH, kdf=CHEAP)


def texts(deliveries: list[Delivery]) -> list[str]:
    return [d.text for d in deliveries]


# -- construction --------------------------------------------------------------------


def test_every_router_gets_a_new_epoch():
    epochs = {ChatRouter().epoch for _ in range(20)}
    assert len(epochs) == 20
    assert all(isinstance(e, str) and e for e in epochs)


def test_injected_epoch_is_kept():
    assert ChatRouter(epoch="fixed", kdf=CHEAP).epoch == "fixed"


@pytest.mark.parametrize("retention", [-1, 1.5, "10", True, None])
def test_bad_retention_is_rejected(retention):
    with pytest.raises(ValueError, match="retention"):
        ChatRouter(retention=retention)


@pytest.mark.parametrize("epoch", ["", 3])
def test_bad_epoch_is_rejected(epoch):
    with pytest.raises(ValueError, match="epoch"):
        ChatRouter(epoch=epoch)


# -- names and secrets ---------------------------------------------------------------


def test_names_are_case_insensitive_and_kept_lower_case(router):
    s = router.connect("Ana.Maria_2-x", "pw")
    assert s.user == "ana.maria_2-x"
    again = router.connect("ANA.MARIA_2-X", "pw")
    assert again.user == "ana.maria_2-x"
    assert router.online() == ["ana.maria_2-x"]


@pytest.mark.parametrize(
    "name", ["", "a" * 33, "ana maria", "joão", "a/b", "ana\n", "\u212a", 7, None, b"ana"]
)
def test_bad_names_are_refused_and_open_nothing(router, name):
    with pytest.raises(Refusal, match="Nome de usuário inválido"):
        router.connect(name, "pw")
    assert router.online() == []


def test_name_of_32_characters_is_accepted(router):
    assert router.connect("a" * 32, "pw").user == "a" * 32


@pytest.mark.parametrize("secret", ["", None, 123])
def test_empty_or_non_text_secret_is_rejected_and_registers_nothing(router, secret):
    with pytest.raises(Refusal, match="segredo"):
        router.connect("ana", secret)
    # The name is still free: a later connect registers it with its own secret.
    router.connect("ana", "real")
    with pytest.raises(AuthError):
        router.connect("ana", "other")


def test_wrong_secret_raises_auth_error_and_opens_nothing(router):
    ana = router.connect("ana", "right")
    router.submit(ana.id, "antes")
    with pytest.raises(AuthError, match="Segredo errado"):
        router.connect("ANA", "wrong")
    router.disconnect(ana.id)
    with pytest.raises(AuthError):
        router.connect("ana", "wrong", resume=(EPOCH, 0))
    assert router.online() == []
    router.connect("ana", "right")  # the right secret still works
    assert router.online() == ["ana"]


# -- sessions ------------------------------------------------------------------------


def test_session_ids_are_distinct_and_sessions_are_frozen(router):
    a, b = router.connect("ana", "pw"), router.connect("ana", "pw")
    assert a.id != b.id and a.user == b.user == "ana"
    assert isinstance(a, Session) and a.recovered is False
    with pytest.raises(dataclasses.FrozenInstanceError):
        a.user = "bia"


def test_online_lists_users_with_at_least_one_open_session(router):
    a1, a2 = router.connect("ana", "pw"), router.connect("ana", "pw")
    b = router.connect("bia", "pw")
    router.connect("Caio", "pw")
    assert router.online() == ["ana", "bia", "caio"]
    router.disconnect(b.id)
    router.disconnect(a1.id)
    assert router.online() == ["ana", "caio"]
    router.disconnect(a2.id)
    assert router.online() == ["caio"]


def test_unknown_session_raises_key_error_on_submit_and_take(router):
    s = router.connect("ana", "pw")
    router.disconnect(s.id)
    for bad in (s.id, "nope", None):
        with pytest.raises(KeyError, match="Sessão desconhecida"):
            router.take(bad)
        with pytest.raises(KeyError):
            router.submit(bad, "oi")


def test_disconnect_of_unknown_or_closed_session_does_nothing(router):
    s = router.connect("ana", "pw")
    router.disconnect(s.id)
    router.disconnect(s.id)
    router.disconnect("never")
    router.disconnect(None)
    assert router.online() == []


def test_submit_rejects_non_text(router):
    s = router.connect("ana", "pw")
    with pytest.raises(TypeError):
        router.submit(s.id, b"bytes")
    assert router.take(s.id) == []


# -- public messages -----------------------------------------------------------------


def test_public_text_reaches_every_open_session_including_the_sender(router):
    a1, a2 = router.connect("ana", "pw"), router.connect("ana", "pw")
    j = router.connect("joao", "pw")
    router.submit(a1.id, "  bom dia  ")
    expected = Delivery(DeliveryKind.PUBLIC, 1, "ana", None, "bom dia")
    for s in (a1, a2, j):
        assert router.take(s.id) == [expected]
    # one immutable object is shared by every queue
    router.submit(j.id, "oi")
    got = [router.take(s.id)[0] for s in (a1, a2, j)]
    assert got[0] is got[1] is got[2]
    with pytest.raises(dataclasses.FrozenInstanceError):
        got[0].text = "x"


def test_delivery_kind_serializes_as_plain_text(router):
    s = router.connect("ana", "pw")
    router.submit(s.id, "oi")
    (d,) = router.take(s.id)
    assert json.loads(json.dumps(dataclasses.asdict(d))) == {
        "kind": "public",
        "offset": 1,
        "sender": "ana",
        "to": None,
        "text": "oi",
    }


def test_offsets_start_at_one_and_grow_by_one_across_kinds(router):
    a, b = router.connect("ana", "pw"), router.connect("bia", "pw")
    router.submit(a.id, "um")
    router.submit(a.id, "/msg bia dois")
    router.submit(b.id, "/who")
    router.submit(b.id, "tres")
    assert [d.offset for d in router.take(b.id)] == [1, 2, None, 3]
    assert router.newest_offset == 3


def test_take_clears_the_queue_and_returns_oldest_first(router):
    a = router.connect("ana", "pw")
    for word in ("um", "dois", "tres"):
        router.submit(a.id, word)
    assert texts(router.take(a.id)) == ["um", "dois", "tres"]
    assert router.take(a.id) == []


def test_closed_sessions_receive_nothing_and_new_ones_start_from_now(router):
    a = router.connect("ana", "pw")
    b = router.connect("bia", "pw")
    router.disconnect(b.id)
    router.submit(a.id, "antes")
    b2 = router.connect("bia", "pw")
    assert router.take(b2.id) == []
    router.submit(a.id, "depois")
    assert texts(router.take(b2.id)) == ["depois"]


# -- private messages ----------------------------------------------------------------


def test_private_reaches_all_sessions_of_both_users_and_nobody_else(router):
    a1, a2 = router.connect("ana", "pw"), router.connect("ana", "pw")
    j1, j2 = router.connect("joao", "pw"), router.connect("joao", "pw")
    b = router.connect("bia", "pw")
    router.submit(a1.id, "/msg JOAO   oi, tudo bem?")
    expected = [Delivery(DeliveryKind.PRIVATE, 1, "ana", "joao", "oi, tudo bem?")]
    for s in (a1, a2, j1, j2):
        assert router.take(s.id) == expected
    assert router.take(b.id) == []


def test_private_to_oneself_reaches_each_own_session_once(router):
    a1, a2 = router.connect("ana", "pw"), router.connect("ana", "pw")
    b = router.connect("bia", "pw")
    router.submit(a2.id, "/msg ana lembrete")
    for s in (a1, a2):
        assert router.take(s.id) == [Delivery(DeliveryKind.PRIVATE, 1, "ana", "ana", "lembrete")]
    assert router.take(b.id) == []


def test_private_to_registered_offline_user_arrives_on_resume(router):
    j = router.connect("joao", "pw")
    router.disconnect(j.id)
    a = router.connect("ana", "pw")
    router.submit(a.id, "/msg joao quando voltar, leia")
    router.submit(a.id, "/msg ana nota")  # not for joao
    assert texts(router.take(a.id)) == ["quando voltar, leia", "nota"]
    back = router.connect("joao", "pw", resume=(EPOCH, 0))
    assert back.recovered is True
    assert router.take(back.id) == [
        Delivery(DeliveryKind.PRIVATE, 1, "ana", "joao", "quando voltar, leia")
    ]


# -- /who and bad input --------------------------------------------------------------


def test_who_answers_only_the_asking_session(router):
    a1, a2 = router.connect("ana", "pw"), router.connect("ana", "pw")
    router.connect("bia", "pw")
    router.submit(a1.id, "/WHO")
    assert router.take(a1.id) == [
        Delivery(DeliveryKind.SYSTEM, None, None, None, "Online agora: ana, bia.")
    ]
    assert router.take(a2.id) == []
    assert router.newest_offset == 0


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
def test_bad_input_queues_one_error_to_its_origin_only_and_keeps_nothing(router, line, fragment):
    a1, a2 = router.connect("ana", "pw"), router.connect("ana", "pw")
    b = router.connect("bia", "pw")
    router.submit(a1.id, line)
    (error,) = router.take(a1.id)
    assert error.kind == DeliveryKind.ERROR and error.offset is None
    assert fragment in error.text
    assert router.take(a2.id) == [] and router.take(b.id) == []
    assert router.newest_offset == 0
    router.submit(b.id, "seguinte")
    assert [d.offset for d in router.take(a1.id)] == [1]


def test_text_of_exactly_the_limit_is_accepted(router):
    a = router.connect("ana", "pw")
    router.submit(a.id, "x" * MAX_TEXT_LENGTH)
    assert router.take(a.id)[0].offset == 1


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


def _fill(router: ChatRouter, n: int) -> Session:
    writer = router.connect("writer", "pw")
    for i in range(1, n + 1):
        router.submit(writer.id, f"m{i}")
    router.take(writer.id)
    return writer


def test_resume_within_history_replays_exactly_what_was_missed(router):
    _fill(router, 4)
    s = router.connect("ana", "pw", resume=(EPOCH, 2))
    assert s.recovered is True
    assert [(d.offset, d.text) for d in router.take(s.id)] == [(3, "m3"), (4, "m4")]


def test_resume_at_newest_offset_recovers_with_nothing_to_replay(router):
    _fill(router, 3)
    s = router.connect("ana", "pw", resume=(EPOCH, 3))
    assert s.recovered is True and router.take(s.id) == []


def test_resume_then_live_messages_keep_increasing_offsets(router):
    writer = _fill(router, 3)
    s = router.connect("ana", "pw", resume=(EPOCH, 1))
    router.submit(writer.id, "m4")
    assert [d.offset for d in router.take(s.id)] == [2, 3, 4]


def test_resume_beyond_retention_announces_gap_and_replays_what_is_left(router):
    _fill(router, 8)  # retention 5 keeps offsets 4..8
    s = router.connect("ana", "pw", resume=(EPOCH, 1))
    assert s.recovered is False
    notice, *rest = router.take(s.id)
    assert notice.kind == DeliveryKind.SYSTEM and "perdido" in notice.text
    assert [d.offset for d in rest] == [4, 5, 6, 7, 8]


def test_resume_exactly_at_the_retention_edge_recovers(router):
    _fill(router, 8)  # 4..8 kept: offset 3 missed only kept ones
    s = router.connect("ana", "pw", resume=(EPOCH, 3))
    assert s.recovered is True
    assert [d.offset for d in router.take(s.id)] == [4, 5, 6, 7, 8]


def test_resume_from_another_epoch_replays_all_visible_history():
    router = ChatRouter(retention=10, epoch="new", kdf=CHEAP)
    a = router.connect("ana", "pw")
    router.connect("bia", "pw")
    router.submit(a.id, "publica")
    router.submit(a.id, "/msg bia segredo")
    router.submit(a.id, "/msg ana nota")
    s = router.connect("bia", "pw", resume=("old", 99))
    assert s.recovered is False
    notice, *rest = router.take(s.id)
    assert notice.kind == DeliveryKind.SYSTEM and "época" in notice.text
    assert texts(rest) == ["publica", "segredo"]


def test_resume_replays_only_messages_the_user_may_see(router):
    a = router.connect("ana", "pw")
    router.connect("bia", "pw")
    router.connect("joao", "pw")
    router.submit(a.id, "/msg bia so para bia")
    router.submit(a.id, "todos")
    s = router.connect("joao", "pw", resume=(EPOCH, 0))
    assert s.recovered is True
    assert texts(router.take(s.id)) == ["todos"]


def test_resume_with_zero_retention():
    router = ChatRouter(retention=0, epoch=EPOCH, kdf=CHEAP)
    s0 = router.connect("ana", "pw", resume=(EPOCH, 0))
    assert s0.recovered is True
    router.submit(s0.id, "oi")
    s = router.connect("ana", "pw", resume=(EPOCH, 0))
    assert s.recovered is False
    assert [d.kind for d in router.take(s.id)] == [DeliveryKind.SYSTEM]


def test_resume_offset_above_newest_is_unrecoverable_and_says_so(router):
    """A store restored from an older copy: never a clean recovery."""
    _fill(router, 2)
    s = router.connect("ana", "pw", resume=(EPOCH, 3))
    assert s.recovered is False
    notice, *replay = router.take(s.id)
    assert notice.kind is DeliveryKind.SYSTEM and "além da mensagem mais nova" in notice.text
    assert [d.offset for d in replay] == [1, 2]  # the newest messages history holds


@pytest.mark.parametrize(
    "resume", [(EPOCH,), (EPOCH, -1), (EPOCH, "3"), (EPOCH, 1.0), (EPOCH, True), (1, 1), "x", 5]
)
def test_malformed_resume_is_refused(router, resume):
    with pytest.raises(Refusal, match="resume"):
        router.connect("ana", "pw", resume=resume)
    assert router.online() == []


def test_resume_accepts_a_list_as_sent_by_json(router):
    _fill(router, 1)
    assert router.connect("ana", "pw", resume=[EPOCH, 0]).recovered is True


# -- submit names the sessions it queued for (what a network adapter flushes) --------


def test_submit_returns_the_sessions_that_got_something(router):
    a1, a2 = router.connect("ana", "pw"), router.connect("ana", "pw")
    j = router.connect("joao", "pw")
    b = router.connect("bia", "pw")
    assert router.submit(b.id, "oi") == [a1.id, a2.id, j.id, b.id]
    assert sorted(router.submit(a2.id, "/msg joao oi")) == sorted([a1.id, a2.id, j.id])
    assert sorted(router.submit(a1.id, "/msg ana nota")) == sorted([a1.id, a2.id])
    assert router.submit(j.id, "/who") == [j.id]
    assert router.submit(j.id, "/msg ninguem oi") == [j.id]
    router.disconnect(a2.id)
    assert sorted(router.submit(b.id, "/msg ana de novo")) == sorted([a1.id, b.id])


def test_submit_to_offline_user_names_only_the_senders_sessions(router):
    j = router.connect("joao", "pw")
    router.disconnect(j.id)
    a = router.connect("ana", "pw")
    assert router.submit(a.id, "/msg joao depois") == [a.id]
