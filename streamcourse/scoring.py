"""Points: what each exercise is worth, what each submission earned, and one grade per learner and lab.

* **Worth** comes from the exercise cells of ``solutions/`` (learners can edit
  their own metadata), or from the ``specs.json`` a Gradescope autograder
  carries instead of the solutions.
* **Earned**: an exercise earns the share of its checks that passed, unless
  the solution says ``"partial_credit": false`` (in the exercise cell's
  ``streamcourse`` metadata or the notebook's).
* **Hidden checks** show only their own words: one that fails without a
  message says "a hidden check failed", never its code or where it lives.
* **One grade per learner and lab**: the best of several notebooks, flagged.

``Grade`` round-trips through JSON (``to_json``/``from_json``): that is how
shards are merged into reports identical to a single run.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from streamcourse import notebooks
from streamcourse.checking import SOLUTIONS_DIR
from streamcourse.records import CellRecord, CheckRecord, SubmissionRecord, submission_record
from streamcourse.results import CHECK_BROKE, NOT_GRADED, PASSED, hide

__all__ = [
    "ExerciseSpec",
    "ExerciseGrade",
    "Identity",
    "Late",
    "Grade",
    "lab_specs",
    "save_specs",
    "load_specs",
    "score",
    "grade_records",
    "best_per_lab",
    "to_json",
    "from_json",
]


@dataclass(frozen=True)
class ExerciseSpec:
    id: str
    points: float
    partial: bool = True


@dataclass
class ExerciseGrade:
    exercise: str
    points: float
    max_points: float
    checks: list[CheckRecord]


@dataclass(frozen=True)
class Identity:
    """Who the learner is in the LMS the submission came from (what gradebooks match on)."""

    lms: str = "folder"  # where the submission came from: folder, zip, canvas, moodle, gradescope
    display: str = ""
    lms_id: str = ""  # that LMS's id for the learner
    email: str = ""
    roster_id: str = ""  # from --roster: the id in the LMS the gradebook goes to
    sis_user_id: str = ""
    sis_login_id: str = ""
    section: str = ""


@dataclass(frozen=True)
class Late:
    """What the late policy did to one grade, in the words the feedback shows."""

    penalty: float  # points taken off
    note: str


@dataclass
class Grade:
    learner: str
    lab: str
    path: str
    exercises: list[ExerciseGrade]
    cells: list[CellRecord]
    flags: list[str]
    notes: list[str]
    problem: str = ""
    seconds: float = 0.0
    attempts: int = 1
    identity: Identity = field(default_factory=Identity)
    late: Late | None = None

    @property
    def raw_points(self) -> float:
        return round(sum(e.points for e in self.exercises), 2)

    @property
    def points(self) -> float:
        return max(0.0, round(self.raw_points - (self.late.penalty if self.late else 0.0), 2))

    @property
    def max_points(self) -> float:
        return round(sum(e.max_points for e in self.exercises), 2)


# --------------------------------------------------------------------------- what exercises are worth


def _solutions(solutions_dir: Path) -> Iterator[tuple[Path, Any]]:
    """Each solution notebook of the labs, read (its ``NotebookError`` in its place when it cannot be)."""
    for solution in sorted(solutions_dir.glob("lab[0-9][0-9]_*.ipynb")):
        try:
            nb: Any = notebooks.read(solution)
        except notebooks.NotebookError as exc:
            nb = exc
        yield solution, nb


def lab_specs(solutions_dir: Path = SOLUTIONS_DIR) -> tuple[dict[str, list[ExerciseSpec]], list[str]]:
    """Each lab's exercises and points, from the SOLUTION notebooks; plus warnings."""
    specs: dict[str, list[ExerciseSpec]] = {}
    warnings: list[str] = []
    for solution, nb in _solutions(solutions_dir):
        if isinstance(nb, notebooks.NotebookError):
            warnings.append(f"solution {solution.name} cannot be read, its lab is not graded: {nb}")
            continue
        lab = notebooks.lab_of(nb, solution)
        if lab is None:
            continue
        lab_partial = nb.metadata.get("streamcourse", {}).get("partial_credit", True) is not False
        exercises = []
        for ex in notebooks.exercises(nb):
            info = notebooks.cell_info(nb.cells[ex.cell_index])
            exercises.append(
                ExerciseSpec(ex.id, ex.points, lab_partial and info.get("partial_credit", True) is not False)
            )
        specs[lab] = exercises
    return specs, warnings


def lab_timeouts(solutions_dir: Path = SOLUTIONS_DIR) -> dict[str, float]:
    """Each lab's own time per submission, where its SOLUTION sets one (``metadata.streamcourse.timeout``).

    ``grade`` uses them when the instructor gives no ``--timeout``: a lab whose
    checks take a second need not let an endless loop run for the minute a lab
    with load tests needs.
    """
    timeouts: dict[str, float] = {}
    for solution, nb in _solutions(solutions_dir):
        if isinstance(nb, notebooks.NotebookError):
            continue  # lab_specs already warns about it
        lab, seconds = notebooks.lab_of(nb, solution), nb.metadata.get("streamcourse", {}).get("timeout")
        if lab is not None and type(seconds) in (int, float) and seconds > 0:
            timeouts[lab] = float(seconds)
    return timeouts


def save_specs(specs: dict[str, list[ExerciseSpec]]) -> str:
    return json.dumps({lab: [vars(e) for e in exercises] for lab, exercises in sorted(specs.items())}, indent=1)


def load_specs(text: str) -> dict[str, list[ExerciseSpec]]:
    return {
        lab: [ExerciseSpec(str(e["id"]), float(e["points"]), bool(e["partial"])) for e in exercises]
        for lab, exercises in json.loads(text).items()
    }


# --------------------------------------------------------------------------- what a submission earned


def _unknown_lab(record: SubmissionRecord) -> str:
    name = Path(record.path).name
    if not record.lab:
        return f"cannot tell which lab {name} is: its metadata names no lab and its file name has no labNN."
    return f"{record.lab} is not a lab of this course (no solutions/{record.lab}_*.ipynb)."


def _exercise(
    spec: ExerciseSpec, record: SubmissionRecord, hidden_dirs: list[str], problem: str, flags: list[str]
) -> ExerciseGrade:
    checks = []
    for check in (c for c in record.checks if c.exercise == spec.id):
        if check.hidden and check.status != PASSED:
            check = replace(check, message=hide(check.message, hidden_dirs))
        if check.status == CHECK_BROKE:
            flags.append(f"check {check.nodeid} could not run: {check.message[:200]}")
        checks.append(check)
    passed = sum(c.status == PASSED for c in checks)
    if not checks:
        points = 0.0
        if not problem:
            flags.append(f"no checks ran for {spec.id}: is its check file missing?")
    elif spec.partial:
        points = round(spec.points * passed / len(checks), 2)
    else:
        points = spec.points if passed == len(checks) else 0.0
    return ExerciseGrade(spec.id, points, spec.points, checks)


def grade_records(
    records: Iterable[Any], specs: dict[str, list[ExerciseSpec]], hidden: Iterable[str | Path] = ()
) -> list[Grade]:
    """One ``Grade`` per engine record, points from ``specs``."""
    hidden_dirs = [str(Path(h).resolve()) for h in hidden]
    grades = []
    for record in map(submission_record, records):
        lab = record.lab or ""
        problem = record.unreadable
        flags = list(record.flags)
        if lab not in specs and record.ended != NOT_GRADED:
            problem = " ".join(filter(None, [_unknown_lab(record), problem]))
        exercises = [_exercise(spec, record, hidden_dirs, problem, flags) for spec in specs.get(lab, [])]
        grades.append(
            Grade(
                record.learner,
                lab or Path(record.path).stem,
                record.path,
                exercises,
                list(record.cells),
                flags,
                list(record.notes),
                problem,
                record.seconds,
                record.attempts,
            )
        )
    return grades


def best_per_lab(grades: Iterable[Grade]) -> list[Grade]:
    """One grade per learner and lab: the best of several notebooks, flagged for the instructor."""
    by_lab: dict[tuple[str, str], list[Grade]] = {}
    for grade in grades:
        by_lab.setdefault((grade.learner, grade.lab), []).append(grade)
    kept = []
    for several in by_lab.values():
        keep, *dropped = sorted(several, key=lambda g: (-g.points, g.path))
        keep.flags += [
            f"several notebooks for {keep.lab}: graded {Path(keep.path).name}, not {Path(d.path).name}" for d in dropped
        ]
        kept.append(keep)
    return sorted(kept, key=lambda g: (g.learner, g.lab))


def score(
    records: Iterable[Any], specs: dict[str, list[ExerciseSpec]], hidden: Iterable[str | Path] = ()
) -> list[Grade]:
    """Points per exercise from the solution's metadata and the share of checks passed; one grade per learner and lab."""
    return best_per_lab(grade_records(records, specs, hidden))


# --------------------------------------------------------------------------- JSON, both ways


def to_json(grade: Grade) -> dict[str, Any]:
    return {
        "learner": grade.learner,
        "lab": grade.lab,
        "path": grade.path,
        "points": grade.points,
        "max_points": grade.max_points,
        "raw_points": grade.raw_points,
        "problem": grade.problem,
        "flags": grade.flags,
        "notes": grade.notes,
        "seconds": grade.seconds,
        "attempts": grade.attempts,
        "identity": vars(grade.identity),
        "late": vars(grade.late) if grade.late else None,
        "cells": [vars(c) for c in grade.cells],
        "exercises": [
            {
                "exercise": e.exercise,
                "points": e.points,
                "max_points": e.max_points,
                "checks": [
                    {
                        "name": c.name,
                        "nodeid": c.nodeid,
                        "hidden": c.hidden,
                        "status": c.status,
                        "message": c.message,
                        "seconds": c.seconds,
                    }
                    for c in e.checks
                ],
            }
            for e in grade.exercises
        ],
    }


def from_json(data: dict[str, Any]) -> Grade:
    exercises = [
        ExerciseGrade(
            e["exercise"],
            e["points"],
            e["max_points"],
            [
                CheckRecord(
                    nodeid=c["nodeid"],
                    name=c["name"],
                    exercise=e["exercise"],
                    hidden=c["hidden"],
                    status=c["status"],
                    message=c["message"],
                    seconds=c["seconds"],
                )
                for c in e["checks"]
            ],
        )
        for e in data["exercises"]
    ]
    late = data.get("late")
    return Grade(
        data["learner"],
        data["lab"],
        data["path"],
        exercises,
        [CellRecord(**c) for c in data["cells"]],
        list(data["flags"]),
        list(data["notes"]),
        data["problem"],
        data["seconds"],
        data["attempts"],
        Identity(**data.get("identity", {})),
        Late(**late) if late else None,
    )
