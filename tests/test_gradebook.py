"""Gradebook CSVs Canvas and Moodle import, with their documented columns; --roster for folder submissions."""

from __future__ import annotations

import csv
import io
import json
import sys
from pathlib import Path

from streamcourse import gradebook, grading
from streamcourse.scoring import lab_specs

sys.path.insert(0, str(Path(__file__).parent / "grading_fixtures"))
import fake_engine
import lms_zips


def table(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text)))


def grade(tmp_path: Path, inputs: list[Path], **options: object) -> Path:
    opts = grading.GradeOptions(specs=lab_specs()[0], **options)  # type: ignore[arg-type]
    grading.grade(
        inputs,
        tmp_path / "out",
        progress=False,
        options=opts,
        engine=fake_engine.FakeEngine(lambda s: fake_engine.record(s, passed=3 if "1234" in s.learner else 4)),
    )
    return tmp_path / "out" / "gradebook"


def test_canvas_csv_has_canvas_columns_a_points_possible_row_and_the_zip_user_ids(tmp_path: Path) -> None:
    zip_path = lms_zips.canvas(
        tmp_path / "c.zip",
        [("smithbob", "1234", False, lms_zips.notebook()), ("leeann", "5678", True, lms_zips.notebook(marker="2"))],
    )
    books = grade(tmp_path, [zip_path], gradebooks=("canvas",), assignments={"lab01": "Lab 1: Generators (4242)"})
    rows = table((books / "canvas.csv").read_text())
    assert rows[0] == ["Student", "ID", "SIS User ID", "SIS Login ID", "Section", "Lab 1: Generators (4242)"]
    assert rows[1] == ["Points Possible", "", "", "", "", "10"]
    assert rows[2:] == [["leeann", "5678", "", "", "", "10"], ["smithbob", "1234", "", "", "", "7"]]


def test_a_roster_maps_folder_learners_to_canvas_ids_and_sections(tmp_path: Path) -> None:
    for name in ("alice", "bob"):
        (tmp_path / "class" / name).mkdir(parents=True)
        (tmp_path / "class" / name / "lab01_generators.ipynb").write_bytes(lms_zips.notebook(marker=name))
    roster = tmp_path / "roster.csv"
    roster.write_text('learner,name,id,sis_user_id,sis_login_id,section\nalice,"Liddell, Alice",101,S-1,alice,Mon\n')
    books = grade(tmp_path, [tmp_path / "class"], gradebooks=("canvas",), roster=gradebook.load_roster(roster))
    rows = table((books / "canvas.csv").read_text())
    assert rows[2] == ["Liddell, Alice", "101", "S-1", "alice", "Mon", "10"]
    assert rows[3] == ["bob", "", "", "", "", "10"]
    warnings = json.loads((tmp_path / "out" / "grades.json").read_text())["warnings"]
    assert "canvas.csv: bob has no Canvas ID, SIS User ID or SIS Login ID: give --roster" in warnings


def test_canvas_own_gradebook_export_can_be_the_roster(tmp_path: Path) -> None:
    (tmp_path / "class" / "jdoe").mkdir(parents=True)
    (tmp_path / "class" / "jdoe" / "lab01_generators.ipynb").write_bytes(lms_zips.notebook())
    export = tmp_path / "export.csv"
    export.write_text(
        "Student,ID,SIS User ID,SIS Login ID,Section,Lab 1 (4242)\nPoints Possible,,,,,10\n"
        '"Doe, Jane",777,S-7,jdoe,Tue,\n'
    )
    books = grade(tmp_path, [tmp_path / "class"], gradebooks=("canvas",), roster=gradebook.load_roster(export))
    assert table((books / "canvas.csv").read_text())[2] == ["Doe, Jane", "777", "S-7", "jdoe", "Tue", "10"]


def test_moodle_worksheet_has_identifier_grade_and_last_modified_per_lab(tmp_path: Path) -> None:
    zip_path = lms_zips.moodle(
        tmp_path / "m.zip",
        [("Bob Smith", "1234", lms_zips.notebook()), ("Ann Lee", "99", lms_zips.notebook(marker="2"))],
    )
    rows = table((grade(tmp_path, [zip_path], gradebooks=("moodle",)) / "moodle-lab01.csv").read_text())
    assert rows[0] == [
        "Identifier",
        "Full name",
        "Email address",
        "Grade",
        "Maximum Grade",
        "Last modified (grade)",
        "Feedback comments",
    ]
    by_id = {r[0]: r for r in rows[1:]}
    assert by_id["Participant 1234"][3:5] == ["7", "10"] and by_id["Participant 99"][3] == "10"
    assert by_id["Participant 1234"][5].endswith("UTC")
    assert (
        by_id["Participant 99"][1:2] == ["Ann Lee"]
        and by_id["Participant 99"][6] == "10 / 10 points from the autograder."
    )
