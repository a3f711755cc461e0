"""Gradescope autograder mode: ``gradescope build`` writes the autograder zip, ``gradescope run`` grades in it.

Gradescope's documented contract (docs/specs.md in gradescope/autograder_samples,
published at gradescope-autograders.readthedocs.io/en/latest/specs/):

* the zip has ``setup.sh`` (run once on Ubuntu when the image is built) and
  ``run_autograder`` at its root, and is unpacked into ``/autograder/source``;
* for each submission, the learner's files are in ``/autograder/submission``,
  the working directory is ``/autograder``, and ``run_autograder`` must write
  ``/autograder/results/results.json``: an optional top-level ``score``,
  ``execution_time``, ``output`` (+ ``output_format``), ``visibility``,
  ``stdout_visibility``, and ``tests``, each with ``score``, ``max_score``,
  ``status`` (``passed``/``failed``), ``name``, ``number``, ``output``,
  ``output_format``, ``tags`` and ``visibility`` (``visible``, ``hidden``,
  ``after_due_date``, ``after_published``).

Here every check is one test worth its share of its exercise's points (the
shares add up to what ``grade`` gives); hidden checks get ``after_published``
(or ``--hidden-visibility``); every text is ``"text"`` format, so nothing a
learner wrote is rendered as HTML. The zip carries the support package, the
visible checks, the hidden checks and the points (``gradescope.json``) — never
``solutions/``. ``STREAMCOURSE_AUTOGRADER_ROOT`` (or ``run --root``) replaces
``/autograder``, which is how the tests run it in a temporary folder.
Gradescope applies its own late policy; ``--due``/``--late-penalty`` are for ``grade``.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from streamcourse import grading, untrusted
from streamcourse.checking import CHECKS_DIR, REPO
from streamcourse.feedback import display_name, file_label
from streamcourse.results import PASSED
from streamcourse.scoring import ExerciseGrade, Grade, lab_specs, load_specs, save_specs

__all__ = ["ROOT_ENV", "VISIBILITIES", "build", "run", "results"]

ROOT_ENV = "STREAMCOURSE_AUTOGRADER_ROOT"
VISIBILITIES = ("hidden", "after_due_date", "after_published", "visible")
CONFIG = "gradescope.json"
_STAMP = (1980, 1, 1, 0, 0, 0)

SETUP_SH = """#!/usr/bin/env bash
# Gradescope runs this once, as root on its Ubuntu base image, when it builds the autograder.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
PY=""
for candidate in python3.13 python3.12 python3.11; do
    if command -v "$candidate" >/dev/null 2>&1; then PY="$candidate"; break; fi
done
if [ -z "$PY" ]; then PY=python3.11; apt-get install -y -qq --no-install-recommends python3.11 >/dev/null; fi
apt-get install -y -qq --no-install-recommends "$PY-venv" bubblewrap >/dev/null
"$PY" -m venv /autograder/venv
/autograder/venv/bin/pip install --quiet --upgrade pip
/autograder/venv/bin/pip install --quiet /autograder/source/course   # the course's pinned dependencies
"""

RUN_AUTOGRADER = """#!/usr/bin/env bash
# Gradescope runs this for every submission; it must write results/results.json.
set -uo pipefail
ROOT="${STREAMCOURSE_AUTOGRADER_ROOT:-/autograder}"
PYTHON="${STREAMCOURSE_PYTHON:-$ROOT/venv/bin/python}"
export PYTHONPATH="$ROOT/source/course"   # the course as zipped, with its checks beside it
cd "$ROOT"
exec "$PYTHON" -m streamcourse gradescope run --root "$ROOT"
"""


def _course_files(check_dirs: list[Path]) -> dict[str, Path]:
    """Zip path -> file: the support package, the visible checks and the hidden checks; no solutions."""
    files = {f"course/streamcourse/{p.name}": p for p in sorted((REPO / "streamcourse").glob("*.py"))}
    files.update({f"course/tests/labs/{p.name}": p for p in sorted(CHECKS_DIR.glob("test_lab*.py"))})
    files["course/tests/labs/checks.ini"] = CHECKS_DIR / "checks.ini"
    for name in ("pyproject.toml", "README.md"):
        files[f"course/{name}"] = REPO / name
    for n, folder in enumerate(check_dirs):
        files.update(
            {
                f"course/hidden/{n}/{p.relative_to(folder).as_posix()}": p
                for p in sorted(folder.rglob("*.py"))
                if "__pycache__" not in p.parts
            }
        )
    return files


def _add(archive: zipfile.ZipFile, name: str, data: bytes, executable: bool = False) -> None:
    info = zipfile.ZipInfo(name, _STAMP)
    info.external_attr = (0o100755 if executable else 0o100644) << 16
    info.compress_type = zipfile.ZIP_DEFLATED
    archive.writestr(info, data)


def build(
    out: Path,
    check_dirs: Sequence[Path] = (),
    labs: Sequence[str] = (),
    visibility: str = "after_published",
    timeout: float = 60.0,
) -> Path:
    """Write the autograder zip for ``labs`` (default: every lab) to ``out``."""
    specs, warnings = lab_specs()
    if warnings:
        raise grading.GradingError("; ".join(warnings))
    unknown = sorted(set(labs) - set(specs))
    if unknown:
        raise grading.GradingError(f"--lab {', '.join(unknown)}: not a lab of this course ({', '.join(sorted(specs))})")
    chosen = {lab: specs[lab] for lab in (labs or specs)}
    config = {
        "labs": sorted(chosen),
        "hidden_visibility": visibility,
        "timeout": timeout,
        "specs": json.loads(save_specs(chosen)),
        "hidden": [f"hidden/{n}" for n in range(len(check_dirs))],
    }
    with zipfile.ZipFile(out, "w") as archive:
        _add(archive, "setup.sh", SETUP_SH.encode(), executable=True)
        _add(archive, "run_autograder", RUN_AUTOGRADER.encode(), executable=True)
        _add(archive, f"course/{CONFIG}", (json.dumps(config, indent=1) + "\n").encode())
        for name, path in _course_files([Path(d).resolve() for d in check_dirs]).items():
            _add(archive, name, path.read_bytes())
    return out


# --------------------------------------------------------------------------- results.json


def _tests(exercise: ExerciseGrade, number: int, hidden_visibility: str) -> list[dict[str, Any]]:
    share = exercise.max_points / len(exercise.checks) if exercise.checks else 0.0
    all_passed = all(c.status == PASSED for c in exercise.checks)
    tests = []
    for n, check in enumerate(exercise.checks, start=1):
        earns = check.status == PASSED and (all_passed or exercise.points > 0)  # all-or-nothing exercises earn 0 each
        tests.append(
            {
                "name": untrusted.clean(f"{exercise.exercise}: {display_name(check)}"),
                "name_format": "text",
                "number": f"{number}.{n}",
                "score": round(share if earns else 0.0, 4),
                "max_score": round(share, 4),
                "status": "passed" if check.status == PASSED else "failed",
                "output": untrusted.clean(check.message if check.status != PASSED else "", keep_newlines=True),
                "output_format": "text",
                "tags": [exercise.exercise],
                "visibility": hidden_visibility if check.hidden else "visible",
            }
        )
    return tests


def _summary(grades: list[Grade], labs: Sequence[str], notes: Sequence[str]) -> str:
    lines = []
    for lab in labs:
        grade = next((g for g in grades if g.lab == lab and g.exercises), None)
        if grade is None:
            lines.append(f"{lab}: no notebook for {lab} was found in your submission: upload your {lab}_*.ipynb.")
            continue
        lines.append(
            f"{lab}: {grade.points:g} / {grade.max_points:g} points" + (f" — {grade.problem}" if grade.problem else "")
        )
        lines += [f"  while your notebook ran: {c.error}" for c in grade.cells if c.status != PASSED]
    lines += [
        f"{file_label(g.path)}: not graded here: {g.problem or f'{g.lab} is not part of this assignment'}"
        for g in grades
        if g.lab not in labs or not g.exercises
    ]
    lines += notes
    return untrusted.clean("\n".join(lines), keep_newlines=True)


def results(
    grades: list[Grade], labs: Sequence[str], hidden_visibility: str, seconds: float, notes: Sequence[str] = ()
) -> dict[str, Any]:
    """``results.json`` for the grades of one submission, in Gradescope's documented schema."""
    chosen = [g for g in grades if g.lab in labs and g.exercises]
    tests = []
    number = 0
    for grade in sorted(chosen, key=lambda g: g.lab):
        for exercise in grade.exercises:
            number += 1
            tests += _tests(exercise, number, hidden_visibility)
    return {
        "score": round(sum(g.points for g in chosen), 2),
        "execution_time": int(round(seconds)),
        "output": _summary(grades, labs, list(notes)),
        "output_format": "text",
        "test_output_format": "text",
        "test_name_format": "text",
        "stdout_visibility": "hidden",
        "tests": tests,
    }


def _failed(why: str) -> dict[str, Any]:
    return {
        "score": 0.0,
        "output": untrusted.clean(f"The autograder could not grade this submission: {why}", True),
        "output_format": "text",
        "stdout_visibility": "hidden",
        "tests": [],
    }


def run(root: Path | None = None) -> int:
    """Grade ``ROOT/submission`` and write ``ROOT/results/results.json``; always writes it, 0 when grading ran."""
    root = Path(root or os.environ.get(ROOT_ENV, "/autograder"))
    course = REPO  # the course as unpacked from the autograder zip
    started = time.monotonic()
    (root / "results").mkdir(parents=True, exist_ok=True)
    status = 0
    try:
        config = json.loads((course / CONFIG).read_text(encoding="utf-8"))
        options = grading.GradeOptions(specs=load_specs(json.dumps(config["specs"])))
        limits = grading.Limits(timeout=float(config["timeout"]))
        with tempfile.TemporaryDirectory(prefix="streamcourse-gradescope-") as out:
            grades = grading.grade(
                [root / "submission"],
                out,
                [course / h for h in config["hidden"]],
                jobs=1,
                limits=limits,
                progress=False,
                options=options,
            )
            notes = json.loads((Path(out) / "grades.json").read_text(encoding="utf-8")).get("intake", [])
        data = results(grades, config["labs"], config["hidden_visibility"], time.monotonic() - started, notes)
    except (grading.GradingError, OSError, ValueError, KeyError) as exc:
        data, status = _failed(str(exc)), 1
    (root / "results" / "results.json").write_text(
        json.dumps(data, indent=1, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    return status
