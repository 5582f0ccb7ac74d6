"""The fault run's checker (benchmarks.ha.checker) finds each kind of violation it
claims to, on small made-up histories, and none on a correct one."""

from benchmarks.ha.checker import check

LOG = {
    1: ("ana", None, "ana-1"),
    2: ("bia", "ana", "bia-1"),
    3: ("bia", "caio", "bia-2"),  # private: ana may not see it
    4: ("caio", None, "caio-1"),
}


def history(*events):
    return [(kind, float(time), *rest) for time, (kind, *rest) in enumerate(events)]


def welcome(recovered=False, asked=None):
    return ("welcome", "E", recovered, asked)


def message(offset, replayed=False):
    sender, to, text = LOG[offset]
    return ("message", offset, sender, to, text, replayed)


def test_a_correct_history_has_no_violation():
    ana = history(
        welcome(),
        ("send", "ana-1"),
        message(1),
        message(2),
        ("closed", 1001),
        welcome(True, ("E", 2)),
        message(4, replayed=True),
    )
    report = check("E", LOG, {"ana": ana})
    assert report.violations == 0, report.examples
    assert (report.acknowledged, report.delivered, report.resumes, report.recovered) == (1, 3, 1, 1)


def test_an_acknowledged_line_missing_from_the_log_is_a_violation():
    lost = {1: LOG[1], 2: LOG[2], 4: LOG[4]}
    bia = history(welcome(), ("send", "bia-2"), message(3))  # echoed at 3, gone from the log
    report = check("E", lost, {"bia": bia})
    assert report.violations == 2  # not at its offset, and not in the log once


def test_a_message_delivered_with_another_text_is_a_violation():
    taken_back = dict(LOG)
    taken_back[4] = ("caio", None, "other")
    report = check("E", taken_back, {"ana": history(welcome(), message(4))})
    assert report.violations == 1


def test_one_offset_seen_with_two_texts_is_a_violation():
    ana = history(welcome(), ("message", 4, "caio", None, "caio-1", False))
    eva = history(welcome(), ("message", 4, "caio", None, "caio-9", False))
    report = check("E", LOG, {"ana": ana, "eva": eva})
    assert any("2 textos" in text for text in report.examples)


def test_a_silent_gap_is_a_violation_and_a_told_one_is_not():
    silent = history(welcome(), message(1), message(4))  # 2 was for ana
    assert check("E", LOG, {"ana": silent}).violations == 1
    told = history(welcome(), message(1), ("closed", 1012), welcome(False, ("E", 1)), message(4))
    assert check("E", LOG, {"ana": told}).violations == 0
    not_hers = history(welcome(), message(2), message(4))  # 3 is private between others
    assert check("E", LOG, {"ana": not_hers}).violations == 0


def test_a_welcome_under_another_epoch_is_a_violation():
    report = check("E", LOG, {"ana": [("welcome", 0.0, "F", False, None)]})
    assert report.violations == 1


def test_a_line_stored_twice_is_a_violation_and_one_sent_again_once_is_not():
    doubled = dict(LOG)
    doubled[5] = ("ana", None, "ana-1")  # sent again, stored again
    ana = history(welcome(), ("send", "ana-1"), message(1))
    report = check("E", doubled, {"ana": ana})
    assert report.violations == 1 and "2 vezes" in report.examples[0]
    once = history(
        welcome(),
        ("send", "ana-1"),
        ("error", "não foi confirmada", "ana-1"),
        ("resend", "ana-1"),
        message(1),
    )
    report = check("E", LOG, {"ana": once})
    assert report.violations == 0, report.examples
    assert (report.sent, report.resent, report.errors, report.acknowledged) == (1, 1, 1, 1)
    assert (report.appeared_after_error, report.unknown) == (1, 0)


def test_a_short_seeded_fault_run_finds_no_violation(tmp_path):
    """benchmarks.chat_faults end to end, briefly: faults happen, operations are
    recorded, the checker finds nothing (the full run is a benchmark)."""
    from benchmarks.chat_faults import main

    result = main(["--seconds", "8", "--seed", "5", "--output", str(tmp_path / "faults.json")])
    report = result["report"]
    assert len(result["faults"]) >= 1 and report["operations"] > 1000
    assert report["violations"] == 0, report["examples"]
