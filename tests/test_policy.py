"""Late penalties: applied from the time each input carries, with the feedback saying what was done."""

from __future__ import annotations

import csv
import datetime as dt
import sys
from pathlib import Path

import pytest

from streamcourse import grading, policy
from streamcourse.intake import SubmissionFile
from streamcourse.scoring import lab_specs

sys.path.insert(0, str(Path(__file__).parent / "grading_fixtures"))
import fake_engine
import lms_zips

UTC = dt.UTC
DUE = dt.datetime(2025, 3, 1, 23, 59, tzinfo=UTC)
TEN_PER_DAY = policy.LatePolicy(DUE, 0.10, dt.timedelta(days=1))


def sub(submitted: dt.datetime | None = None, **kw: object) -> SubmissionFile:
    return SubmissionFile(
        Path("/x/lab01.ipynb"), "ann_7", submitted_at=submitted, time_source="Gradescope's submission time", **kw
    )  # type: ignore[arg-type]


def test_each_started_day_late_costs_its_share_of_the_lab() -> None:
    late = policy.assess(TEN_PER_DAY, sub(DUE + dt.timedelta(hours=25)), 10)
    assert late.penalty == 2.0
    assert "1 d 1 h late; 2 started days late × 10% = 20% of 10 points: −2 points" in late.note
    assert "Submitted 2025-03-03 00:59 UTC (Gradescope's submission time), due 2025-03-01 23:59 UTC" in late.note


def test_a_minute_late_is_one_started_period() -> None:
    assert policy.assess(TEN_PER_DAY, sub(DUE + dt.timedelta(minutes=1)), 10).penalty == 1.0


def test_on_time_says_so_and_costs_nothing() -> None:
    late = policy.assess(TEN_PER_DAY, sub(DUE - dt.timedelta(hours=1)), 10)
    assert late.penalty == 0 and "on time, no penalty" in late.note


def test_the_penalty_stops_at_late_max() -> None:
    capped = policy.LatePolicy(DUE, 0.10, dt.timedelta(days=1), cap=0.3)
    late = policy.assess(capped, sub(DUE + dt.timedelta(days=9)), 10)
    assert late.penalty == 3.0 and "(capped at 30%)" in late.note


def test_an_extension_moves_the_due_time(tmp_path: Path) -> None:
    table = tmp_path / "extensions.csv"
    table.write_text("learner,due,days\nann_7,,2\nbo,2025-03-10T12:00+00:00,\n")
    extended = policy.LatePolicy(DUE, 0.1, dt.timedelta(days=1), extensions=policy.load_extensions(table, DUE))
    late = policy.assess(extended, sub(DUE + dt.timedelta(days=1)), 10)
    assert late.penalty == 0 and "due 2025-03-03 23:59 UTC (your extension): on time" in late.note
    assert extended.extensions["bo"] == dt.datetime(2025, 3, 10, 12, tzinfo=UTC)


def test_canvas_late_mark_costs_one_period_unless_extended() -> None:
    marked = sub(lms="canvas", lms_late=True, lms_id="7")
    late = policy.assess(TEN_PER_DAY, marked, 10)
    assert (
        late.penalty == 1.0 and "Canvas marked this submission late; its download holds no submission time" in late.note
    )
    extended = policy.LatePolicy(DUE, 0.1, dt.timedelta(days=1), extensions={"7": DUE + dt.timedelta(days=3)})
    assert policy.assess(extended, marked, 10).penalty == 0
    assert "did not mark" in policy.assess(TEN_PER_DAY, sub(lms="canvas"), 10).note


def test_moodle_and_folders_carry_no_time_so_nothing_is_applied() -> None:
    assert (
        policy.assess(TEN_PER_DAY, sub(lms="moodle"), 10).note
        == "No late policy applied: the Moodle download carries no submission time."
    )
    assert "notebook in a folder" in policy.assess(TEN_PER_DAY, sub(), 10).note


@pytest.mark.parametrize(
    "option, value, words",
    [
        ("penalty", "10 per day", "like 10%/day"),
        ("penalty", "10%/fortnight", "periods: hour, day, week"),
        ("due", "next friday", "like 2025-03-01T23:59"),
        ("share", "150%", "like 10%"),
    ],
)
def test_options_that_cannot_be_read_show_the_expected_form(option: str, value: str, words: str) -> None:
    parse = {
        "penalty": policy.parse_penalty,
        "due": policy.parse_due,
        "share": lambda v: policy.parse_share(v, "--late-max"),
    }[option]
    with pytest.raises(policy.PolicyError, match=words):
        parse(value)


def test_a_due_without_a_zone_is_this_machines_local_time() -> None:
    assert policy.parse_due("2025-03-01T23:59") == dt.datetime(2025, 3, 1, 23, 59).astimezone()


def test_the_penalty_shows_in_grades_csv_in_the_feedback_and_in_grades_json(tmp_path: Path) -> None:
    zip_path = lms_zips.gradescope(
        tmp_path / "gs.zip",
        [
            ("Ada Lovelace", "s1", "2025-03-02 10:00:00.000000000 +00:00", lms_zips.notebook()),
            ("Alan Turing", "s2", "2025-03-01 20:00:00.000000000 +00:00", lms_zips.notebook(marker="x")),
        ],
    )
    options = grading.GradeOptions(specs=lab_specs()[0], late=TEN_PER_DAY)
    grades = grading.grade(
        [zip_path], tmp_path / "out", progress=False, options=options, engine=fake_engine.FakeEngine()
    )
    assert {g.learner: g.points for g in grades} == {"Ada Lovelace_s1": 9.0, "Alan Turing_s2": 10.0}
    with open(tmp_path / "out" / "grades.csv", newline="") as file:
        penalty = [r for r in csv.DictReader(file) if r["exercise"] == "late penalty"]
    assert penalty == [
        {"learner": "Ada Lovelace_s1", "lab": "lab01", "exercise": "late penalty", "points": "-1", "max_points": "0"}
    ]
    feedback = (tmp_path / "out" / "feedback" / "Ada Lovelace_s1" / "lab01.md").read_text()
    assert "# lab01 — 9 / 10 points" in feedback and "**Late policy:** Submitted 2025-03-02 10:00 UTC" in feedback
    assert "on time" in (tmp_path / "out" / "feedback" / "Alan Turing_s2" / "lab01.html").read_text()
