"""The engine's state machine: a checker's events in, one submission's record out (no process involved)."""

from __future__ import annotations

from streamcourse.engine import SubmissionState
from streamcourse.records import CellRecord, CheckRecord, Event, Job, Limits
from streamcourse.results import CRASHED, ERROR, NOT_RUN, PASSED, TIMED_OUT

LIMITS = Limits(timeout=30)
PLANNED = [CheckRecord(f"t.py::test_{n}", f"test_{n}", "lab01.batched", False, "") for n in range(3)]


def state() -> SubmissionState:
    return SubmissionState(
        Job(4, "/class/ann/lab01_generators.ipynb", "ann"), LIMITS, expected=list(PLANNED), started=100.0
    )


def passed(check: CheckRecord) -> Event:
    return Event("result", checks=[CheckRecord(check.nodeid, check.name, check.exercise, False, PASSED, "", 0.1)])


def run(s: SubmissionState, *events: Event, at: float = 101.0) -> None:
    for event in events:
        s.on_event(event, at)


def test_a_submission_that_ran_to_its_end_has_every_result() -> None:
    s = state()
    run(
        s,
        Event("lab", lab="lab01"),
        Event("collected", checks=PLANNED),
        *map(passed, PLANNED),
        Event("finished", count=1),
    )
    record = s.end("", 105.0)
    assert record.lab == "lab01" and [c.status for c in record.checks] == [PASSED] * 3
    assert record.ended == "" and record.seconds == 5.0 and record.attempts == 1


def test_cells_that_failed_are_kept_in_order() -> None:
    s = state()
    run(
        s,
        Event("cell", cell=CellRecord(7, ERROR, "cell 7 raised X")),
        Event("cell", cell=CellRecord(2, TIMED_OUT, "cell 2 ...")),
    )
    assert [c.index for c in s.end("", 102.0).cells] == [2, 7]


def test_running_out_of_time_labels_the_check_that_was_running_and_the_rest_not_run() -> None:
    s = state()
    run(
        s,
        Event("lab", lab="lab01"),
        Event("collected", checks=PLANNED),
        passed(PLANNED[0]),
        Event("start", nodeid=PLANNED[1].nodeid),
    )
    record = s.end(f"{TIMED_OUT}: it used up its 30 s", 132.0)
    statuses = [c.status for c in record.checks]
    assert statuses == [PASSED, TIMED_OUT, NOT_RUN]
    assert "used up all its 30 s" in record.checks[1].message and "ran out of time" in record.checks[2].message


def test_a_checker_that_dies_labels_the_running_check_crashed() -> None:
    s = state()
    run(s, Event("collected", checks=PLANNED), Event("start", nodeid=PLANNED[0].nodeid))
    record = s.end(f"{CRASHED}: the checker was killed by SIGKILL", 103.0)
    assert record.checks[0].status == CRASHED and "grading stopped during this check" in record.checks[0].message


def test_without_a_collected_event_the_engines_own_list_of_checks_is_used() -> None:
    s = state()
    record = s.end(f"{CRASHED}: the checker exited with status 70", 101.0)
    assert [c.nodeid for c in record.checks] == [c.nodeid for c in PLANNED]
    assert {c.status for c in record.checks} == {NOT_RUN}


def test_an_unreadable_notebook_says_why_on_every_check() -> None:
    s = state()
    run(s, Event("lab", lab="lab01", text="not valid notebook JSON"), Event("finished"))
    record = s.end("", 101.0)
    assert record.unreadable == "not valid notebook JSON"
    assert all(c.message == "not valid notebook JSON" for c in record.checks)


def test_a_normal_end_without_a_finished_event_is_not_taken_for_a_normal_end() -> None:
    s = state()
    run(s, Event("collected", checks=PLANNED))
    assert s.end("", 101.0).ended == "the checker stopped before it finished"


def test_the_deadline_is_the_budget_plus_a_grace() -> None:
    assert 130.0 < state().deadline < 135.0
