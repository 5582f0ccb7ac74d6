"""The Parte 2 answer tells where the message came from, and never claims more."""

from wslab.challenge.answer import part2_answer
from wslab.challenge.provenance import RECORDED_MESSAGE
from wslab.challenge.result import Failure, FetchResult

OFFLINE = FetchResult(
    url="wss://websocket-fh6l.onrender.com",
    source="live",
    failure=Failure.DNS,
    explanation="O nome websocket-fh6l.onrender.com não foi resolvido.",
)
ONLINE = FetchResult(
    url="wss://websocket-fh6l.onrender.com",
    source="live",
    message="Olá mundo! LTIS 2025",
    status=101,
    received_at="2026-11-26T10:00:00+00:00",
)


def test_shows_the_program_file():
    answer = part2_answer(OFFLINE)
    assert answer.startswith("```python\n") and "def read_first_message" in answer


def test_offline_gives_the_recorded_message_with_its_provenance():
    answer = part2_answer(OFFLINE)
    assert f"`{RECORDED_MESSAGE}`" in answer
    assert "soluções públicas" in answer and "não pôde ser feita nesta compilação" in answer
    assert OFFLINE.explanation in answer
    assert "ao vivo de" not in answer


def test_offline_quotes_the_last_live_capture():
    capture = {"received_at": "2026-11-20T08:00:00+00:00", "message": "Olá mundo! LTIS 2025"}
    answer = part2_answer(OFFLINE, capture)
    assert "2026-11-20T08:00:00+00:00" in answer


def test_online_says_when_it_was_received_live():
    answer = part2_answer(ONLINE)
    assert "recebida ao vivo" in answer and "2026-11-26T10:00:00+00:00" in answer
    assert "não pôde ser feita" not in answer
