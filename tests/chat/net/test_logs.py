"""Log lines a client cannot flood or forge (wslab.chat.net.logs): every value it sent
escaped and cut; repeats of one kind let through in bursts and counted; tracebacks of
the libraries' loggers dropped."""

import io
import logging

import pytest

from wslab.chat.net.logs import Summarizer, quiet_libraries, shown


class Clock:
    """The time a Summarizer reads: moved by the test."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def logged():
    """(log, clock, output): a handler writing one line per record to ``output``, with a
    Summarizer of 3 records per 10 s of each kind on it; ``log(name, message, *args)``
    logs through the logger ``name``."""
    output, clock = io.StringIO(), Clock()
    handler = logging.StreamHandler(output)
    handler.setFormatter(logging.Formatter("%(name)s %(message)s"))
    handler.addFilter(Summarizer(burst=3, window=10.0, clock=clock))
    loggers = {}

    def log(name, message, *args, **options):
        logger = loggers.get(name)
        if logger is None:
            logger = loggers[name] = logging.getLogger(name)
            logger.addHandler(handler)
            logger.propagate = False
            logger.setLevel(logging.INFO)
        logger.warning(message, *args, **options)

    yield log, clock, output
    for logger in loggers.values():
        logger.removeHandler(handler)


def test_a_value_is_escaped_so_it_cannot_fake_a_second_line():
    assert shown("ana\n2026-01-01 00:00:00 aberta s1 admin") == (
        "'ana\\n2026-01-01 00:00:00 aberta s1 admin'"
    )
    assert "\x1b" not in shown("\x1b[31mvermelho")


def test_a_long_value_is_cut_to_its_limit():
    assert shown("n" * 16_000) == "'" + "n" * 56 + "..."
    assert len(shown("n" * 16_000, limit=20)) == 20
    assert shown("ana") == "'ana'" and shown(7) == "7"


def test_repeats_of_one_kind_pass_in_bursts_and_the_next_window_says_how_many_were_left_out(
    logged,
):
    log, clock, output = logged
    for n in range(10):
        log("wslab.chat.net.service", "recusada %s: %d", f"10.0.0.{n}", 4000)
    assert output.getvalue().splitlines() == [
        "wslab.chat.net.service recusada 10.0.0.0: 4000",
        "wslab.chat.net.service recusada 10.0.0.1: 4000",
        "wslab.chat.net.service recusada 10.0.0.2: 4000",
    ]
    clock.now = 9.9  # still the same window
    log("wslab.chat.net.service", "recusada %s: %d", "10.0.0.10", 4000)
    assert len(output.getvalue().splitlines()) == 3
    clock.now = 10.0
    log("wslab.chat.net.service", "recusada %s: %d", "10.0.0.11", 4000)
    assert output.getvalue().splitlines()[-1] == (
        "wslab.chat.net.service recusada 10.0.0.11: 4000 (e mais 8 iguais omitidas)"
    )


def test_kinds_are_counted_apart_by_logger_and_template(logged):
    log, _, output = logged
    for _ in range(5):
        log("wslab.chat.net.service", "aberta %s", "s1")
        log("wslab.chat.net.service", "fechada %s", "s1")
        log("wslab.chat.node", "aberta %s", "s1")
    assert len(output.getvalue().splitlines()) == 3 * 3


def test_the_libraries_records_lose_their_traceback_and_wslabs_keep_it(logged):
    log, _, output = logged
    for name in ("asyncio", "websockets.server", "wslab.chat.net.service"):
        try:
            raise OSError("socket.accept() out of system resource")
        except OSError:
            log(name, "falhou em %s", name, exc_info=True)
    lines = output.getvalue().splitlines()
    assert lines[:2] == [
        "asyncio falhou em asyncio",
        "websockets.server falhou em websockets.server",
    ]
    assert lines[2] == "wslab.chat.net.service falhou em wslab.chat.net.service"
    assert lines[3] == "Traceback (most recent call last):"


def test_quiet_libraries_puts_one_summarizer_on_the_handler():
    handler = logging.StreamHandler(io.StringIO())
    quiet_libraries(handler)
    assert [type(f) for f in handler.filters] == [Summarizer]
    assert (handler.filters[0].burst, handler.filters[0].window) == (20, 10.0)


def test_the_kinds_remembered_are_bounded(logged):
    """A thousand kinds at most are remembered (kinds are templates: few in practice);
    past that, they start again from nothing."""
    log, _, output = logged
    for _ in range(4):
        log("wslab.chat.net.service", "sempre a mesma")
    assert output.getvalue().count("sempre a mesma") == 3
    for n in range(1001):
        log("wslab.chat.net.service", f"outra {n}")
    log("wslab.chat.net.service", "sempre a mesma")
    assert output.getvalue().count("sempre a mesma") == 4
