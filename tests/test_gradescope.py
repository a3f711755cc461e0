"""Gradescope autograder mode: the zip it documents, results.json in its documented schema, run in its layout."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import jsonschema
import pytest

from streamcourse import gradescope
from streamcourse.records import CellRecord, CheckRecord
from streamcourse.scoring import ExerciseGrade, Grade

sys.path.insert(0, str(Path(__file__).parent / "grading_fixtures"))
import hostile

# Written from Gradescope's "Autograder Specifications" (docs/specs.md of gradescope/autograder_samples):
# every field it documents, with its documented type or choices, and nothing else.
_VISIBILITY = {"enum": ["hidden", "after_due_date", "after_published", "visible"]}
_FORMAT = {"enum": ["text", "html", "simple_format", "md", "ansi"]}
RESULTS_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "score": {"type": "number"},
        "execution_time": {"type": "number"},
        "output": {"type": "string"},
        "output_format": _FORMAT,
        "test_output_format": _FORMAT,
        "test_name_format": _FORMAT,
        "visibility": _VISIBILITY,
        "stdout_visibility": _VISIBILITY,
        "extra_data": {"type": "object"},
        "tests": {
            "type": "array",
            "items": {
                "type": "object",
                "additionalProperties": False,
                "properties": {
                    "score": {"type": "number"},
                    "max_score": {"type": "number"},
                    "status": {"enum": ["passed", "failed"]},
                    "name": {"type": "string"},
                    "name_format": _FORMAT,
                    "number": {"type": "string"},
                    "output": {"type": "string"},
                    "output_format": _FORMAT,
                    "tags": {"type": "array", "items": {"type": "string"}},
                    "visibility": _VISIBILITY,
                    "extra_data": {"type": "object"},
                },
            },
        },
        "leaderboard": {"type": "array", "items": {"type": "object", "required": ["name", "value"]}},
    },
    "anyOf": [{"required": ["score"]}, {"required": ["tests"]}],  # "score ... required if not on each test case"
}

HIDDEN_CHECK = """
import pytest

@pytest.mark.exercise("lab01.batched")
def test_hidden_order(submission):
    assert list(submission.batched(iter(["a\\n", "b\\n"]), 100)) == ["a\\nb\\n"], "rows must keep their order"
"""


def _check(name: str, passed: bool, hidden: bool = False, exercise: str = "lab01.batched") -> CheckRecord:
    return CheckRecord(
        f"t.py::{name}",
        name,
        exercise,
        hidden,
        "passed" if passed else "failed",
        "" if passed else "rows must keep <b>their</b> order",
        0.1,
    )


def _grade(partial_points: float, checks: list[CheckRecord], max_points: float = 6.0) -> Grade:
    return Grade(
        "ann",
        "lab01",
        "/x/lab01_generators.ipynb",
        [ExerciseGrade("lab01.batched", partial_points, max_points, checks)],
        [CellRecord(3, "error in your code", "cell 3 raised NameError")],
        [],
        [],
    )


def test_results_json_follows_gradescopes_documented_schema() -> None:
    checks = [_check("test_a", True), _check("test_b", False), _check("test_c", True, hidden=True)]
    data = gradescope.results([_grade(4.0, checks)], ["lab01"], "after_published", 3.4)
    jsonschema.validate(data, RESULTS_SCHEMA)
    assert [t["visibility"] for t in data["tests"]] == ["visible", "visible", "after_published"]
    assert [t["status"] for t in data["tests"]] == ["passed", "failed", "passed"]
    assert (
        data["tests"][1]["output"] == "rows must keep <b>their</b> order"
        and data["tests"][1]["output_format"] == "text"
    )
    assert data["score"] == 4.0 and data["execution_time"] == 3 and "cell 3 raised NameError" in data["output"]


def test_the_tests_scores_add_up_to_the_exercise_points() -> None:
    partial = gradescope.results(
        [_grade(4.0, [_check("a", True), _check("b", True), _check("c", False)])], ["lab01"], "hidden", 1
    )
    assert sum(t["score"] for t in partial["tests"]) == pytest.approx(4.0) and {
        t["max_score"] for t in partial["tests"]
    } == {2.0}
    whole = gradescope.results([_grade(0.0, [_check("a", True), _check("b", False)])], ["lab01"], "hidden", 1)
    assert [t["score"] for t in whole["tests"]] == [0.0, 0.0], "all-or-nothing exercises earn nothing per check either"


def test_a_missing_lab_says_what_to_upload() -> None:
    data = gradescope.results([], ["lab01"], "hidden", 1)
    jsonschema.validate(data, RESULTS_SCHEMA)
    assert data["score"] == 0 and "no notebook for lab01 was found in your submission" in data["output"]


def test_the_autograder_zip_has_setup_and_run_at_its_root_and_no_solutions(tmp_path: Path) -> None:
    hidden = tmp_path / "hidden"
    hidden.mkdir()
    (hidden / "test_lab01_hidden.py").write_text(HIDDEN_CHECK)
    zip_path = gradescope.build(tmp_path / "autograder.zip", [hidden], ["lab01"])
    with zipfile.ZipFile(zip_path) as archive:
        names = archive.namelist()
        modes = {i.filename: i.external_attr >> 16 for i in archive.infolist()}
        config = json.loads(archive.read("course/gradescope.json"))
    assert {"setup.sh", "run_autograder"} <= set(names) and modes["run_autograder"] & 0o111
    assert "course/streamcourse/grading.py" in names and "course/tests/labs/test_lab01_generators.py" in names
    assert "course/hidden/0/test_lab01_hidden.py" in names
    assert not [n for n in names if n.startswith(("course/solutions", "course/tests/labs/wrong"))]
    assert config["labs"] == ["lab01"] and config["specs"]["lab01"][0]["id"] == "lab01.read_chunks"
    for script in ("setup.sh", "run_autograder"):
        (tmp_path / script).write_bytes(zipfile.ZipFile(zip_path).read(script))
        subprocess.run(["bash", "-n", str(tmp_path / script)], check=True)


def test_run_autograder_grades_a_submission_in_gradescopes_layout(tmp_path: Path) -> None:
    """The real run_autograder script and engine, with /autograder simulated in a temporary folder."""
    hidden = tmp_path / "hidden"
    hidden.mkdir()
    (hidden / "test_lab01_hidden.py").write_text(HIDDEN_CHECK)
    root = tmp_path / "autograder"
    (root / "source").mkdir(parents=True)
    with zipfile.ZipFile(gradescope.build(tmp_path / "autograder.zip", [hidden], ["lab01"], timeout=30)) as archive:
        archive.extractall(root / "source")
    hostile.wrong("lab01.batched/counts_characters")(root / "submission")
    (root / "submission" / "notes.ipynb").write_text("{}")
    env = {**os.environ, gradescope.ROOT_ENV: str(root), "STREAMCOURSE_PYTHON": sys.executable}
    done = subprocess.run(
        ["bash", str(root / "source" / "run_autograder")], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    data = json.loads((root / "results" / "results.json").read_text())
    jsonschema.validate(data, RESULTS_SCHEMA)
    tests = {t["name"]: t for t in data["tests"]}
    assert len(tests) == 12, "11 visible checks and 1 hidden"
    hidden_test = tests["lab01.batched: (hidden) hidden order"]
    assert hidden_test["visibility"] == "after_published" and hidden_test["status"] == "passed"
    failed = tests["lab01.batched: batched counts utf8 bytes not characters"]
    assert failed["status"] == "failed" and failed["score"] == 0 and failed["output"]
    assert 0 < data["score"] < 10 and data["score"] == pytest.approx(sum(t["score"] for t in data["tests"]), abs=0.02)
    assert "notes.ipynb: not graded here" in data["output"]
