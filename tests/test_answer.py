"""The Parte 2 answer tells where the message came from, and never claims more."""

from wslab.challenge.answer import CONSOLE_CHECK, DETAILS_MARK, part2_answer
from wslab.challenge.provenance import RECORDED_MESSAGE, SOURCES, SOURCES_READ_ON
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


def _parts(answer):
    short, _, depth = answer.partition(DETAILS_MARK)
    return short, depth


def test_the_program_file_is_shown_under_the_answer():
    for answer in (part2_answer(OFFLINE), part2_answer(ONLINE)):
        short, depth = _parts(answer)
        assert "```python\n" in short and "def read_first_message" in short
        assert "```" not in depth


def test_the_short_part_gives_a_browser_check_and_the_cold_start():
    short, _ = _parts(part2_answer(OFFLINE))
    assert CONSOLE_CHECK in short and "Render" in short


def test_offline_gives_the_recorded_message_with_its_provenance():
    short, depth = _parts(part2_answer(OFFLINE))
    assert f"`{RECORDED_MESSAGE}`" in short
    assert "soluções públicas" in short and "não a observou" in short
    assert len(SOURCES) >= 2 and f"lidas em {SOURCES_READ_ON}" in short
    for repo, commit, _ in SOURCES:  # each source linked by repository, its commit in the depth
        assert f"[{repo}](https://github.com/{repo})" in short and f"`{commit}`" in depth
    assert OFFLINE.explanation not in short and OFFLINE.explanation in depth
    assert "recebida ao vivo" not in short + depth


def test_offline_quotes_the_last_live_capture():
    capture = {"received_at": "2026-11-20T08:00:00+00:00", "message": "Olá mundo! LTIS 2025"}
    answer = part2_answer(OFFLINE, capture)
    assert "2026-11-20T08:00:00+00:00" in answer


def test_online_says_when_it_was_received_live():
    short, depth = _parts(part2_answer(ONLINE))
    assert "recebida ao vivo" in short and "2026-11-26T10:00:00+00:00" in short
    assert "não a observou" not in short and "falhou" not in depth
