"""The autograder: hostile and broken submissions, hidden checks, integrity, reports, exit codes.

One class of lab01 submissions (right, blank, wrong, and every hostile kind in
tests/grading_fixtures/hostile.py) is graded ONCE per module, in parallel, by the
real engine; the tests below read what it produced.
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import psutil
import pytest

from streamcourse import grading
from streamcourse.grading import Limits
from streamcourse.records import CheckRecord, SubmissionRecord

sys.path.insert(0, str(Path(__file__).parent / "grading_fixtures"))
import hostile

REPO = Path(__file__).resolve().parent.parent
SECRET = "sk-test-not-for-learners"
LIMITS = Limits(timeout=12, cell_timeout=2, check_timeout=8)

ENV_PROBE = f"""
import os
leaked = "OPENAI_API_KEY" in os.environ or {SECRET!r}.encode() in open("/proc/self/environ", "rb").read()
if leaked or os.environ.get("HOME", "") != os.getcwd():
    del read_chunks, batched  # a leaked secret costs every check: the test sees it in the score
"""


@pytest.fixture(scope="module")
def graded(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("class")
    out = tmp_path_factory.mktemp("out")
    expected: dict[str, float | None] = {}
    for name, make in hostile.HOSTILE.items():
        expected[name] = make(root / name)
    expected["tamper"] = hostile.tamper(out)(root / "tamper")
    expected["right"] = hostile.right(root / "right")
    expected["blank"] = hostile.blank(root / "blank")
    expected["wrong"] = hostile.wrong("lab01.batched/counts_characters")(root / "wrong")
    hostile._write(hostile.with_cell(ENV_PROBE, after="lab01.batched"), root / "env_probe")
    expected["env_probe"] = hostile.FULL
    # labs/ and solutions/ folders, as in the repo (lab01 only, to stay quick)
    for folder in ("labs", "solutions"):
        (root / folder).mkdir()
        shutil.copy(REPO / folder / "lab01_generators.ipynb", root / folder)
    expected["labs"], expected["solutions"] = 0.0, hostile.FULL
    (root / "dave").mkdir()
    (root / "dave" / "homework.ipynb").write_text("not json, and no lab in its name")

    mp = pytest.MonkeyPatch()
    mp.setenv("OPENAI_API_KEY", SECRET)
    scratch = tmp_path_factory.mktemp("grading-scratch")  # every process of this grading works under here
    mp.setattr(tempfile, "tempdir", str(scratch))
    started = time.monotonic()
    check_file_before = hostile.CHECK_FILE.read_bytes()
    try:
        grades = grading.grade([root], out, jobs=2, limits=LIMITS, progress=False)
    finally:
        mp.undo()
    return {
        "grades": {g.learner: g for g in grades},
        "expected": expected,
        "out": out,
        "seconds": time.monotonic() - started,
        "started": started,
        "scratch": scratch,
        "check_file_before": check_file_before,
    }


def test_every_submission_gets_a_result(graded: dict) -> None:
    assert set(graded["grades"]) == set(graded["expected"]) | {"dave"}


def test_an_unknown_lab_is_reported_not_fatal(graded: dict) -> None:
    grade = graded["grades"]["dave"]
    assert "cannot tell which lab homework.ipynb is" in grade.problem and grade.exercises == []
    assert "cannot tell which lab" in grading.summary_table([grade])
    assert (graded["out"] / "feedback" / "dave" / "homework.md").exists()


@pytest.mark.parametrize("learner", [*hostile.HOSTILE, "tamper", "right", "blank", "env_probe", "labs", "solutions"])
def test_points_earned_are_kept_whatever_the_submission_does(graded: dict, learner: str) -> None:
    grade = graded["grades"][learner]
    assert grade.max_points == hostile.FULL, "max points come from the solution's cells"
    assert grade.points == pytest.approx(graded["expected"][learner], abs=0.01), json.dumps(
        [[c.name, c.status, c.message] for e in grade.exercises for c in e.checks], indent=1
    )


def test_a_wrong_answer_gets_partial_credit(graded: dict) -> None:
    grade = graded["grades"]["wrong"]
    batched = next(e for e in grade.exercises if e.exercise == "lab01.batched")
    assert 0 < batched.points < batched.max_points
    assert grade.points == pytest.approx(4 + batched.points)


def test_an_infinite_loop_costs_only_its_cell(graded: dict) -> None:
    cells = graded["grades"]["infinite_loop"].cells
    assert [c.status for c in cells] == [grading.TIMED_OUT]
    assert "did not finish within 2 s" in cells[0].error


def test_a_loop_that_ignores_the_alarm_is_killed_and_the_rest_graded_in_a_fresh_process(graded: dict) -> None:
    grade = graded["grades"]["infinite_loop_ignoring_the_alarm"]
    assert grade.attempts == 2
    assert grade.cells[0].status == grading.TIMED_OUT


def test_an_infinite_generator_fails_its_checks_at_once_with_a_reason(graded: dict) -> None:
    grade = graded["grades"]["infinite_generator"]
    batched = next(e for e in grade.exercises if e.exercise == "lab01.batched")
    assert {c.status for c in batched.checks} == {grading.FAILED}
    assert any("stop when the rows run out" in c.message for c in batched.checks)
    assert grade.seconds < 5, f"the checks take only as many chunks as there are rows; this took {grade.seconds:.1f} s"


def test_a_check_that_hangs_times_out_and_costs_that_check_only(graded: dict) -> None:
    grade = graded["grades"]["hangs_in_a_check"]
    statuses = {c.name: c.status for e in grade.exercises for c in e.checks}
    assert statuses.pop("test_memory_stays_flat_as_the_input_grows") == grading.TIMED_OUT
    assert set(statuses.values()) == {grading.PASSED}


def test_a_crash_during_a_check_costs_that_check_only(graded: dict) -> None:
    grade = graded["grades"]["killed_during_a_check"]
    crashed = [c.name for e in grade.exercises for c in e.checks if c.status == grading.CRASHED]
    assert crashed == ["test_a_row_longer_than_the_limit_is_a_chunk_of_its_own", "test_no_rows_give_no_chunks"]
    assert all("SIGKILL" in c.message for e in grade.exercises for c in e.checks if c.status == grading.CRASHED)


@pytest.mark.parametrize("learner", ["sys_exit", "memory_bomb"])
def test_exits_and_memory_bombs_are_errors_of_one_cell(graded: dict, learner: str) -> None:
    cells = graded["grades"][learner].cells
    assert cells and cells[0].status == grading.ERROR
    assert all(
        c.status in (grading.ERROR, grading.TIMED_OUT) for c in cells
    )  # a slow bomb may hit the time limit first
    words = {"sys_exit": "SystemExit", "memory_bomb": "MemoryError"}[learner]
    assert words in cells[0].error


def test_a_cell_that_ends_its_process_is_skipped_in_a_fresh_runner(graded: dict) -> None:
    grade = graded["grades"]["os_exit"]
    assert [c.status for c in grade.cells] == [grading.CRASHED]
    assert "exited with status 3" in grade.cells[0].error and "skipped" in grade.cells[0].error
    assert grade.attempts == 2


def test_a_notebook_that_is_not_json_gets_a_clear_message(graded: dict) -> None:
    grade = graded["grades"]["not_json"]
    assert "not valid notebook JSON" in grade.problem
    assert grade.lab == "lab01", "the lab comes from the file name when the metadata cannot be read"
    feedback = (graded["out"] / "feedback" / "not_json" / "lab01.md").read_text()
    assert "could not be graded" in feedback and "save it again from Jupyter" in feedback


def test_a_deleted_exercise_cell_says_what_is_missing(graded: dict) -> None:
    batched = next(e for e in graded["grades"]["exercise_cell_deleted"].exercises if e.exercise == "lab01.batched")
    assert all("`batched` is not defined" in c.message for c in batched.checks)


def test_learners_cannot_change_the_checks_the_grades_or_the_machinery(graded: dict) -> None:
    grade = graded["grades"]["tamper"]
    assert hostile.CHECK_FILE.read_bytes() == graded["check_file_before"]
    statuses = {c.status for e in grade.exercises for c in e.checks}
    assert statuses == {grading.ERROR}, (
        "patching pytest in the notebook's own process changes nothing: the blank lab still fails"
    )
    with open(graded["out"] / "grades.csv", newline="") as file:
        assert next(csv.reader(file)) == ["learner", "lab", "exercise", "points", "max_points"]


def test_correct_submissions_are_not_flagged(graded: dict) -> None:
    for learner in ("right", "solutions", "labs", "metadata_stripped", "nbformat_v3", "print_flood"):
        assert graded["grades"][learner].flags == [], learner


def test_no_process_is_left_behind(graded: dict) -> None:
    """Every process this grading started ran under its own scratch folder; none is still running."""
    scratch = str(graded["scratch"])
    left = []
    for proc in psutil.process_iter(["cmdline"]):
        try:
            if scratch in " ".join(proc.info["cmdline"] or []) or proc.cwd().startswith(scratch):
                left.append(proc)
        except psutil.Error:
            continue
    assert left == []


def test_reports_hold_every_exercise_and_every_failure(graded: dict) -> None:
    out = graded["out"]
    with open(out / "grades.csv", newline="") as file:
        rows = list(csv.DictReader(file))
    assert {(r["learner"], r["exercise"]) for r in rows} >= {("right", "lab01.read_chunks"), ("right", "lab01.batched")}
    assert len(rows) == 2 * len(graded["expected"]), "two exercises per lab01 submission; none for an unknown lab"
    data = json.loads((out / "grades.json").read_text())
    by_learner = {s["learner"]: s for s in data["submissions"]}
    blank_checks = [c for e in by_learner["blank"]["exercises"] for c in e["checks"]]
    assert len(blank_checks) == 11 and all(c["message"] for c in blank_checks)
    feedback = (out / "feedback" / "wrong" / "lab01.md").read_text()
    assert "✔ chunks join to the whole file" in feedback
    assert "✘ batched counts utf8 bytes not characters — *failed*: a chunk was" in feedback
    assert "flag" not in feedback.lower(), "flags are for the instructor, not in the learner's feedback"


# --------------------------------------------------------------------------- hidden checks

HIDDEN_CHECKS = """
import pytest

@pytest.mark.exercise("lab01.batched")
def test_hidden_exact_value(submission):
    assert list(submission.batched(iter(["a\\n"]), 1)) == ["SECRET_EXPECTED_VALUE"]

@pytest.mark.exercise("lab01.batched")
def test_hidden_with_words(submission):
    assert False, "rows must keep their order across chunks"

@pytest.mark.exercise("lab01.batched")
def test_hidden_check_breaks_inside(submission):
    {}["SECRET_KEY_NAME"]

@pytest.mark.exercise("lab01.read_chunks")
def test_hidden_passes(submission):
    assert submission.read_chunks

@pytest.mark.exercise("lab01.read_chunks")
async def test_hidden_async_runs(submission):
    assert False, "an async hidden check runs too"
"""


def test_hidden_checks_count_but_never_show_their_code(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    hidden = tmp_path / "hidden_checks_dir"
    hidden.mkdir()
    (hidden / "test_lab01_hidden.py").write_text(HIDDEN_CHECKS)
    hostile.right(tmp_path / "class" / "alice")
    out = tmp_path / "out"
    args = argparse.Namespace(
        submissions=[str(tmp_path / "class")], checks=[str(hidden)], jobs=1, timeout=24.0, out=str(out)
    )
    assert grading.main(args) == 0
    summary = capsys.readouterr().out
    assert "alice" in summary and "lab01" in summary
    [grade] = json.loads((out / "grades.json").read_text())["submissions"]
    checks = {c["name"]: c for e in grade["exercises"] for c in e["checks"]}
    assert len(checks) == 16, "11 public + 5 hidden checks ran"
    assert checks["test_hidden_passes"]["status"] == grading.PASSED
    assert checks["test_hidden_exact_value"]["message"] == grading.HIDDEN_GENERIC
    assert checks["test_hidden_check_breaks_inside"]["message"] == grading.HIDDEN_GENERIC
    assert checks["test_hidden_with_words"]["message"] == "rows must keep their order across chunks"
    assert checks["test_hidden_async_runs"]["message"] == "an async hidden check runs too"
    assert grade["points"] == pytest.approx(4 * 6 / 7 + 6 * 6 / 9, abs=0.02)
    feedback = (out / "feedback" / "alice" / "lab01.md").read_text()
    for secret in ("SECRET_EXPECTED_VALUE", "SECRET_KEY_NAME", "hidden_checks_dir", "assert ", str(tmp_path)):
        assert secret not in feedback
    assert "(hidden) hidden with words" in feedback


# --------------------------------------------------------------------------- units and the command line


def test_submissions_are_found_in_folders_and_named_by_their_folder(tmp_path: Path) -> None:
    hostile.right(tmp_path / "bob")
    hostile.right(tmp_path / "alice" / "deeper")
    (tmp_path / "bob" / ".ipynb_checkpoints").mkdir()
    (tmp_path / "bob" / ".ipynb_checkpoints" / "lab01_generators-checkpoint.ipynb").write_text("{}")
    found = grading.find_submissions([tmp_path])
    assert [(s.learner, s.path.name) for s in found] == [
        ("bob", "lab01_generators.ipynb"),
        ("deeper", "lab01_generators.ipynb"),
    ]


def _args(tmp_path: Path, *submissions: str | Path, out: Path | None = None) -> argparse.Namespace:
    return argparse.Namespace(
        submissions=[str(s) for s in submissions], checks=[], jobs=1, timeout=12.0, out=str(out or tmp_path / "out")
    )


def test_exit_status_is_not_zero_only_when_grading_cannot_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    assert grading.main(_args(tmp_path, empty)) == 2
    assert "no notebooks" in capsys.readouterr().err
    assert grading.main(_args(tmp_path, tmp_path / "missing")) == 2
    hostile.right(tmp_path / "carol")
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    assert grading.main(_args(tmp_path, tmp_path / "carol", out=blocker / "out")) == 2
    assert "cannot write the reports" in capsys.readouterr().err


def test_partial_credit_is_the_share_of_checks_passed_unless_the_lab_says_otherwise() -> None:
    checks = [
        CheckRecord(f"t{i}", f"test_{i}", "lab01.x", False, grading.PASSED if i < 3 else grading.FAILED)
        for i in range(4)
    ]
    record = SubmissionRecord(0, "/x/erin/lab01_generators.ipynb", "erin", "lab01", checks=checks)
    shared = grading.score([record], {"lab01": [grading.ExerciseSpec("lab01.x", 8.0)]})
    whole = grading.score([record], {"lab01": [grading.ExerciseSpec("lab01.x", 8.0, partial=False)]})
    assert (shared[0].points, whole[0].points) == (6.0, 0.0)


def test_every_solution_scores_full_marks_and_every_blank_lab_scores_zero(tmp_path: Path) -> None:
    """The whole course, as an instructor would run it on the repo's own folders."""
    grades = grading.grade([REPO / "solutions", REPO / "labs"], tmp_path / "out", jobs=2, progress=False)
    labs = sorted(p.name[:5] for p in (REPO / "solutions").glob("lab*.ipynb"))
    by_learner: dict[str, dict[str, grading.Grade]] = {}
    for g in grades:
        by_learner.setdefault(g.learner, {})[g.lab] = g
    assert sorted(by_learner["solutions"]) == labs and sorted(by_learner["labs"]) == labs
    short = {
        lab: f"{g.points:g}/{g.max_points:g}" for lab, g in by_learner["solutions"].items() if g.points != g.max_points
    }
    assert short == {}, f"solutions that lost points: {short}"
    earned = {lab: g.points for lab, g in by_learner["labs"].items() if g.points != 0}
    assert earned == {}, f"blank labs that earned points: {earned}"
    assert all(g.max_points > 0 and not g.flags for g in grades)


def test_without_a_timeout_a_lab_gets_the_time_its_solution_sets_never_what_the_learner_wrote(tmp_path: Path) -> None:
    nb = hostile.with_cell("while True:\n    pass")
    nb.metadata["streamcourse"]["timeout"] = 1000  # the learner's own claim, in their own notebook
    hostile._write(nb, tmp_path / "class" / "looper")

    (grade,) = grading.grade([tmp_path / "class"], tmp_path / "out", jobs=1, progress=False)

    assert grade.points == hostile.FULL
    assert "did not finish within 1.5 s" in grade.cells[0].error, "lab01's solution sets 6 s: 1.5 s per cell"
    run = json.loads((tmp_path / "out" / "grades.json").read_text())
    assert run["limits"]["lab_timeouts"] == {"lab01": 6.0}


def test_without_a_usable_sandbox_grade_refuses_and_says_how_to_install_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(
        grading.isolation, "problem", lambda: "`bwrap` is not installed. " + grading.isolation.INSTALL_HINT
    )
    hostile.right(tmp_path / "class" / "ann")
    assert grading.main(_args(tmp_path, tmp_path / "class")) == 2
    err = capsys.readouterr().err
    assert "apt-get install bubblewrap" in err and "--no-isolation" in err
    assert not (tmp_path / "out" / "grades.json").exists()


def test_grading_without_isolation_says_so_in_the_reports_and_the_summary(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    hostile.right(tmp_path / "class" / "ann")
    args = _args(tmp_path, tmp_path / "class")
    args.no_isolation = True
    assert grading.main(args) == 0
    assert "WARNING: graded WITHOUT isolation" in capsys.readouterr().out
    data = json.loads((tmp_path / "out" / "grades.json").read_text())
    assert data["isolated"] is False and grading.NOT_ISOLATED in data["warnings"]
    assert data["submissions"][0]["points"] == hostile.FULL
