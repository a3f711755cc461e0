"""Reports out: CSV injection, HTML escaping, links planted in OUT, the terminal, an engine that dies mid-class.

Grading runs through the real ``grade`` with a fake engine (records with the
engine's real field names, tests/grading_fixtures/fake_engine.py): these are
tests of the class-level flow, and take milliseconds.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
from pathlib import Path

import pytest

from streamcourse import grading, reports, untrusted
from streamcourse.scoring import lab_specs

sys.path.insert(0, str(Path(__file__).parent / "grading_fixtures"))
import fake_engine
import lms_zips

SPECS = grading.GradeOptions(specs=lab_specs()[0])
ESCAPES = "\x1b[2J\x1b]0;owned\x07\x1b[31m"


def make_class(root: Path, *learners: str) -> Path:
    for n, learner in enumerate(learners):
        (root / learner).mkdir(parents=True, exist_ok=True)
        (root / learner / "lab01_generators.ipynb").write_bytes(lms_zips.notebook(marker=str(n)))
    return root


def run(tmp_path: Path, engine: fake_engine.FakeEngine, *learners: str, options: grading.GradeOptions = SPECS) -> list:
    return grading.grade(
        [make_class(tmp_path / "class", *learners)], tmp_path / "out", progress=False, options=options, engine=engine
    )


def rows(path: Path) -> list[list[str]]:
    with open(path, newline="", encoding="utf-8") as file:
        return list(csv.reader(file))


# --------------------------------------------------------------------------- CSV, HTML, terminal


def test_csv_cells_that_could_start_a_formula_are_neutralised_in_every_csv(tmp_path: Path) -> None:
    learners = ["=HYPERLINK(1)", "+1", "-2", "@SUM(A1)", "\tx", "\rcr", "plain"]
    options = grading.GradeOptions(specs=SPECS.specs, gradebooks=("canvas", "moodle"))
    grades = run(
        tmp_path, fake_engine.FakeEngine(), *[name.strip() or name for name in learners[:4]], "plain", options=options
    )
    assert len(grades) == 5
    cells = [c for name in ("grades.csv", "gradebook/canvas.csv") for row in rows(tmp_path / "out" / name) for c in row]
    for name in ("=HYPERLINK(1)", "+1", "-2", "@SUM(A1)"):
        assert name not in cells and "'" + name in cells
    assert untrusted.csv_cell("\tx") == "'\tx" and untrusted.csv_cell("\rx") == "'\rx"
    assert untrusted.csv_cell(-2.5) == "-2.5", "numbers the grader computed stay numbers"


def test_html_feedback_escapes_everything_a_learner_controls(tmp_path: Path) -> None:
    evil = "<script>alert(1)</script>"
    engine = fake_engine.FakeEngine(lambda s: fake_engine.record(s, passed=1, message=f"got {evil} & more"))
    run(tmp_path, engine, "img onerror=x")
    page = (tmp_path / "out" / "feedback" / "img onerror=x" / "lab01.html").read_text()
    assert "<script" not in page and "&lt;script&gt;alert(1)&lt;/script&gt; &amp; more" in page
    assert "default-src 'none'" in page, "a Content-Security-Policy forbids scripts and loads"


def test_html_feedback_shows_what_passed_what_failed_points_and_time_per_check(tmp_path: Path) -> None:
    run(
        tmp_path,
        fake_engine.FakeEngine(lambda s: fake_engine.record(s, passed=3, message="rows must keep their order")),
        "ann",
    )
    page = (tmp_path / "out" / "feedback" / "ann" / "lab01.html").read_text()
    assert "lab01 — 7 / 10 points" in page
    assert "lab01.read_chunks — 4 / 4 points" in page and "lab01.batched — 3 / 6 points" in page
    assert "chunks join to the whole file" in page and "0.25 s" in page and "1.00 s" in page
    assert "failed: rows must keep their order" in page
    assert (tmp_path / "out" / "feedback" / "ann" / "lab01.md").exists(), "the Markdown stays beside the page"


def test_hidden_checks_show_only_their_message(tmp_path: Path) -> None:
    engine = fake_engine.FakeEngine(
        lambda s: fake_engine.record(s, passed=3, hidden=True, message="assert x == 'SECRET'")
    )
    run(tmp_path, engine, "ann")
    for name in ("lab01.md", "lab01.html"):
        text = (tmp_path / "out" / "feedback" / "ann" / name).read_text()
        assert "SECRET" not in text and grading.HIDDEN_GENERIC in text and "(hidden) no rows give no chunks" in text


def test_nothing_learner_controlled_reaches_the_terminal_as_an_escape_code(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    engine = fake_engine.FakeEngine(
        lambda s: {**fake_engine.record(s, lab=f"lab01{ESCAPES}"), "flags": [f"flag {ESCAPES}"]}
    )
    (tmp_path / "class" / f"mal{ESCAPES}").mkdir(parents=True)
    (tmp_path / "class" / f"mal{ESCAPES}" / "lab01_generators.ipynb").write_bytes(lms_zips.notebook())
    args = argparse.Namespace(
        submissions=[str(tmp_path / "class")], checks=[], jobs=1, timeout=10.0, out=str(tmp_path / "out")
    )
    monkeypatch.setattr(grading, "run_engine", engine)
    assert grading.main(args) == 0
    printed = capsys.readouterr()
    assert "\x1b" not in printed.out + printed.err and "\x07" not in printed.out + printed.err
    assert "mal" in printed.out and "is not a lab of this course" in printed.out


# --------------------------------------------------------------------------- OUT, links


def test_links_planted_in_out_are_replaced_never_written_through(tmp_path: Path) -> None:
    victim = tmp_path / "instructor_file.txt"
    victim.write_text("precious")
    victim_dir = tmp_path / "instructor_dir"
    victim_dir.mkdir()
    out = tmp_path / "out"
    (out / "feedback").mkdir(parents=True)
    (out / "grades.csv").symlink_to(victim)
    (out / "grades.json").symlink_to(victim)
    (out / "feedback" / "ann").symlink_to(victim_dir)
    run(tmp_path, fake_engine.FakeEngine(), "ann")
    assert victim.read_text() == "precious" and list(victim_dir.iterdir()) == []
    assert not (out / "grades.csv").is_symlink() and rows(out / "grades.csv")[0] == reports.CSV_HEADER
    assert not (out / "feedback" / "ann").is_symlink() and (out / "feedback" / "ann" / "lab01.md").exists()
    assert sorted(p.name for p in out.iterdir()) == ["feedback", "grades.csv", "grades.json"], (
        "no staging folder is left"
    )


def test_an_out_folder_that_is_a_link_is_refused_with_a_clear_message(tmp_path: Path) -> None:
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "out").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(grading.GradingError, match="is a symbolic link .* never written through a link"):
        run(tmp_path, fake_engine.FakeEngine(), "ann")
    assert list((tmp_path / "elsewhere").iterdir()) == []


def test_reports_from_an_earlier_run_are_replaced_whole(tmp_path: Path) -> None:
    run(tmp_path, fake_engine.FakeEngine(), "ann", "bob")
    os.rename(tmp_path / "class", tmp_path / "old_class")
    run(tmp_path, fake_engine.FakeEngine(), "cid")
    assert sorted(p.name for p in (tmp_path / "out" / "feedback").iterdir()) == ["cid"]


# --------------------------------------------------------------------------- the engine dies


def test_grade_writes_every_report_when_the_engine_dies_mid_class_and_stays_dead(tmp_path: Path) -> None:
    engine = fake_engine.FakeEngine(die_after=(1, 0))
    grades = {g.learner: g for g in run(tmp_path, engine, "ann", "bob", "cid")}
    assert engine.calls == [["ann", "bob", "cid"], ["bob", "cid"]], "restarted once for what was left"
    assert grades["ann"].points == 10
    for learner in ("bob", "cid"):
        assert grades[learner].problem.startswith("not graded: the grading engine stopped")
        assert grades[learner].exercises and grades[learner].points == 0
    data = json.loads((tmp_path / "out" / "grades.json").read_text())
    assert [s["learner"] for s in data["submissions"]] == ["ann", "bob", "cid"]
    assert any("started again" in w for w in data["warnings"])
    assert "not graded" in (tmp_path / "out" / "feedback" / "bob" / "lab01.md").read_text()


def test_a_restarted_engine_grades_what_the_dead_one_left(tmp_path: Path) -> None:
    engine = fake_engine.FakeEngine(die_after=(1,))
    grades = run(tmp_path, engine, "ann", "bob", "cid")
    assert [g.points for g in grades] == [10, 10, 10] and not any(g.problem for g in grades)


def test_main_exits_0_when_the_engine_dies_after_grading_some(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(grading, "run_engine", fake_engine.FakeEngine(die_after=(1, 0)))
    args = argparse.Namespace(
        submissions=[str(make_class(tmp_path / "class", "ann", "bob"))],
        checks=[],
        jobs=1,
        timeout=10.0,
        out=str(tmp_path / "out"),
    )
    assert grading.main(args) == 0
    assert "1 NOT graded (the engine stopped): bob" in capsys.readouterr().out


def test_an_engine_that_grades_nothing_leaves_reports_and_exit_status_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(grading, "run_engine", fake_engine.FakeEngine(die_after=(0, 0)))
    args = argparse.Namespace(
        submissions=[str(make_class(tmp_path / "class", "ann"))],
        checks=[],
        jobs=1,
        timeout=10.0,
        out=str(tmp_path / "out"),
    )
    assert grading.main(args) == 2
    assert "the grading engine graded nothing" in capsys.readouterr().err
    assert rows(tmp_path / "out" / "grades.csv")[1][:3] == ["ann", "lab01", "lab01.read_chunks"]
