"""The instructor's autograder: ``python -m streamcourse grade SUBMISSIONS...``.

How a class is graded:

* **Submissions.** Notebooks named on the command line or found in folders; a
  learner is named by the folder that holds the notebook, a lab by the
  notebook's metadata or, failing that, its file name.
* **One engine for the class.** ``run_engine`` starts ``streamcourse.engine``
  in a separate process with a scrubbed environment, sends it the submissions,
  each lab's exercises and the ``Limits``, and reads back one record per
  submission as it is done. Each submission's notebook runs in a bubblewrap
  sandbox and its checks in a trusted checker (``streamcourse.isolation``,
  ``streamcourse.checker``); nothing in this module runs learner code.
* **Scores** use the points of the exercise cells in ``solutions/`` (learners
  can edit their own metadata). An exercise earns the share of its checks that
  passed, unless the solution says ``"partial_credit": false`` (in the
  exercise cell's ``streamcourse`` metadata or the notebook's).
* **Hidden checks** (``--checks DIR``) show only their own words: a hidden check
  that fails without a message says "a hidden check failed", never its code or
  where it lives.

Reports: ``OUT/grades.csv``, ``OUT/grades.json`` (with every failure message and
flag), ``OUT/feedback/<learner>/<lab>.md`` (for the learner, in the words
``check()`` uses) and a summary table on the terminal.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import datetime as _dt
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

from streamcourse import isolation, notebooks, pacing
from streamcourse.checking import REPO, SOLUTIONS_DIR
from streamcourse.records import GradingSpec, Job, Limits, RecordError, SubmissionRecord, load
from streamcourse.results import (  # noqa: F401 - the statuses are re-exported: they are what grades.json reports
    CHECK_BROKE,
    CRASHED,
    ERROR,
    FAILED,
    HIDDEN_GENERIC,
    NOT_RUN,
    PASSED,
    TIMED_OUT,
    hide,
)

NOT_ISOLATED = "graded WITHOUT isolation (--no-isolation): learner code ran outside the sandbox, as the instructor"

#: Environment variables the engine may see (everything else, secrets included, is dropped).
ENV_KEEP = ("PATH", "LANG", "LANGUAGE", "LC_ALL", "LC_CTYPE", "TZ", "STREAMCOURSE_SPEED")

__all__ = [
    "GradingError",
    "Limits",
    "SubmissionFile",
    "ExerciseSpec",
    "find_submissions",
    "lab_specs",
    "run_engine",
    "score",
    "write_reports",
    "grade",
    "main",
]


class GradingError(RuntimeError):
    """Grading itself cannot run (no submissions, unwritable output, engine failure)."""


# --------------------------------------------------------------------------- submissions and labs


@dataclass(frozen=True)
class SubmissionFile:
    path: Path
    learner: str


def _safe_name(name: str) -> str:
    cleaned = re.sub(r"[^\w.@+-]+", "_", name).strip("._")
    return cleaned or "unknown"


def find_submissions(paths: Iterable[str | Path]) -> list[SubmissionFile]:
    """Notebooks named on the command line, or found in folders; the learner is the holding folder."""
    found: dict[Path, SubmissionFile] = {}
    for raw in paths:
        path = Path(raw)
        if path.is_file():
            files = [path]
        elif path.is_dir():
            files = sorted(
                f for f in path.rglob("*.ipynb")
                if f.is_file() and not any(part.startswith(".") for part in f.relative_to(path).parts)
            )
        else:
            raise GradingError(f"{raw}: no such file or folder")
        for file in files:
            resolved = file.resolve()
            found.setdefault(resolved, SubmissionFile(resolved, _safe_name(resolved.parent.name)))
    if not found:
        raise GradingError("no notebooks (*.ipynb) found in " + ", ".join(map(str, paths)))
    return sorted(found.values(), key=lambda s: (s.learner, s.path.name))


@dataclass(frozen=True)
class ExerciseSpec:
    id: str
    points: float
    partial: bool = True


def lab_specs(solutions_dir: Path = SOLUTIONS_DIR) -> tuple[dict[str, list[ExerciseSpec]], list[str]]:
    """Each lab's exercises and points, from the SOLUTION notebooks; plus warnings."""
    specs: dict[str, list[ExerciseSpec]] = {}
    warnings: list[str] = []
    for solution in sorted(solutions_dir.glob("lab[0-9][0-9]_*.ipynb")):
        try:
            nb = notebooks.read(solution)
        except notebooks.NotebookError as exc:
            warnings.append(f"solution {solution.name} cannot be read, its lab is not graded: {exc}")
            continue
        lab = notebooks.lab_of(nb, solution)
        if lab is None:
            continue
        lab_partial = nb.metadata.get("streamcourse", {}).get("partial_credit", True) is not False
        exercises = []
        for ex in notebooks.exercises(nb):
            info = notebooks.cell_info(nb.cells[ex.cell_index])
            exercises.append(ExerciseSpec(ex.id, ex.points, lab_partial and info.get("partial_credit", True) is not False))
        specs[lab] = exercises
    return specs, warnings


_LAB_IN_TEXT = re.compile(rb'"lab"\s*:\s*"(lab\d\d)"')


def _lab_hints(path: Path) -> set[str]:
    """Labs a notebook probably belongs to, from its name and its first 64 KiB (never parsed here)."""
    hints = set(re.findall(r"lab\d\d", path.name))
    try:
        with open(path, "rb") as file:
            hints.update(m.decode() for m in _LAB_IN_TEXT.findall(file.read(1 << 16)))
    except OSError:
        pass
    return hints


# --------------------------------------------------------------------------- the grader's side of the engine


def _engine_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k in ENV_KEEP or k.startswith("LC_")}
    env.setdefault("PATH", "/usr/bin:/bin")
    env.setdefault(pacing.ENV, pacing.CHECKING_SPEED)
    env.update(
        PYTHONPATH=str(REPO),
        PYTHONDONTWRITEBYTECODE="1",
        PYTHONUNBUFFERED="1",
        MALLOC_ARENA_MAX="2",  # threads would each reserve 64 MiB of address space otherwise
        MPLBACKEND="Agg",
    )
    return env


def run_engine(
    submissions: list[SubmissionFile],
    labs: dict[str, list[str]],
    check_dirs: Iterable[str | Path] = (),
    jobs: int | None = None,
    limits: Limits | None = None,
    isolated: bool = True,
    on_done: Callable[[SubmissionRecord], None] | None = None,
) -> tuple[list[SubmissionRecord], dict[str, Any]]:
    """Grade submissions in the engine (``streamcourse.engine``); one record per submission, and its ready info."""
    spec = GradingSpec(
        jobs=[Job(i, str(s.path), s.learner) for i, s in enumerate(submissions)],
        labs=labs,
        hidden=[str(Path(d).resolve()) for d in check_dirs],
        workers=max(1, jobs or os.cpu_count() or 1),
        limits=limits or Limits(),
        isolated=isolated,
        hints=sorted({lab for s in submissions for lab in _lab_hints(s.path)}),
    )
    root = tempfile.mkdtemp(prefix="streamcourse-grade-")
    env = _engine_env()
    env.update(HOME=root, TMPDIR=root)
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamcourse.engine"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env=env,
        cwd=root,
        start_new_session=True,
    )
    assert proc.stdin is not None and proc.stdout is not None
    records: dict[int, SubmissionRecord] = {}
    ready: dict[str, Any] = {}
    try:
        proc.stdin.write((json.dumps(dataclasses.asdict(spec)) + "\n").encode())
        proc.stdin.flush()  # stdin stays open: the engine stops when the grader goes away
        for raw in proc.stdout:
            try:
                event = json.loads(raw)
            except json.JSONDecodeError:
                continue
            if event.get("event") == "ready":
                ready = event
            elif event.get("event") == "done":
                try:
                    record = load(SubmissionRecord, json.dumps(event["record"]))
                except RecordError as exc:
                    raise GradingError(f"the grading engine sent an unreadable record ({exc})") from None
                records[record.id] = record
                if on_done:
                    on_done(record)
            elif event.get("event") == "fatal":
                raise GradingError("the grading engine failed: " + str(event.get("error", "?")))
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            try:
                proc.stdin.close()  # the engine stops its checkers and exits when its input closes
                proc.wait(timeout=5)
            except (OSError, subprocess.TimeoutExpired):
                proc.kill()
                proc.wait()
        shutil.rmtree(root, ignore_errors=True)
    missing = [s for i, s in enumerate(submissions) if i not in records]
    if missing:
        raise GradingError(f"the grading engine stopped (status {proc.returncode}) before grading {len(missing)} submission(s)")
    return [records[i] for i in range(len(submissions))], ready


# --------------------------------------------------------------------------- scoring and reports (the grader's process)


@dataclass
class ExerciseGrade:
    exercise: str
    points: float
    max_points: float
    checks: list[dict[str, Any]]


@dataclass
class Grade:
    learner: str
    lab: str
    path: str
    exercises: list[ExerciseGrade]
    cells: list[dict[str, Any]]
    flags: list[str]
    notes: list[str]
    problem: str = ""
    seconds: float = 0.0
    attempts: int = 1

    @property
    def points(self) -> float:
        return round(sum(e.points for e in self.exercises), 2)

    @property
    def max_points(self) -> float:
        return round(sum(e.max_points for e in self.exercises), 2)


def _display_name(check: dict[str, Any]) -> str:
    name = str(check.get("name", "")).split("[")[0].removeprefix("test_").replace("_", " ")
    return f"(hidden) {name}" if check.get("hidden") else name


def score(records: list[SubmissionRecord] | list[dict[str, Any]], specs: dict[str, list[ExerciseSpec]], hidden: Iterable[str | Path] = ()) -> list[Grade]:
    """Points per exercise from the solution's metadata and the share of checks passed."""
    hidden_dirs = [str(Path(h).resolve()) for h in hidden]
    grades: list[Grade] = []
    for raw in records:
        record = dataclasses.asdict(raw) if isinstance(raw, SubmissionRecord) else raw
        lab = record.get("lab") or ""
        stem = Path(record["path"]).stem
        problem = str(record.get("unreadable") or "")
        flags = list(record.get("flags", []))
        if lab not in specs:
            problem = " ".join(filter(None, [(
                f"cannot tell which lab {Path(record['path']).name} is: its metadata names no lab and its file name has no labNN."
                if not lab else f"{lab} is not a lab of this course (no solutions/{lab}_*.ipynb)."
            ), problem]))
        exercises = []
        for spec in specs.get(lab, []):
            checks = [dict(c) for c in record.get("checks", []) if c.get("exercise") == spec.id]
            for check in checks:
                if check.get("hidden") and check.get("status") != PASSED:
                    check["message"] = hide(str(check.get("message", "")), hidden_dirs)
                if check.get("status") == CHECK_BROKE:
                    flags.append(f"check {check['nodeid']} could not run: {check.get('message', '')[:200]}")
            passed = sum(c.get("status") == PASSED for c in checks)
            if not checks:
                points = 0.0
                if not problem:
                    flags.append(f"no checks ran for {spec.id}: is its check file missing?")
            elif spec.partial:
                points = round(spec.points * passed / len(checks), 2)
            else:
                points = spec.points if passed == len(checks) else 0.0
            exercises.append(ExerciseGrade(spec.id, points, spec.points, checks))
        grades.append(Grade(
            record["learner"], lab or stem, record["path"], exercises, list(record.get("cells", [])), flags,
            list(record.get("notes", [])), problem, float(record.get("seconds", 0.0)), int(record.get("attempts", 1)),
        ))
    # One grade per learner and lab: the best of several notebooks, flagged.
    best: dict[tuple[str, str], Grade] = {}
    for grade in grades:
        key = (grade.learner, grade.lab)
        other = best.get(key)
        if other is None:
            best[key] = grade
            continue
        keep, drop = (grade, other) if grade.points > other.points else (other, grade)
        keep.flags.append(f"several notebooks for {grade.lab}: graded {Path(keep.path).name}, not {Path(drop.path).name}")
        best[key] = keep
    return sorted(best.values(), key=lambda g: (g.learner, g.lab))


def _mark(status: str) -> str:
    return "✔" if status == PASSED else "✘"


def feedback_text(grade: Grade) -> str:
    """The learner's feedback for one lab, in the words check() uses."""
    lines = [f"# {grade.lab} — {grade.points:g} / {grade.max_points:g} points", ""]
    lines.append(f"Graded: `{Path(grade.path).name}`")
    lines.append("")
    if grade.problem:
        lines += [f"**Your notebook could not be graded:** {grade.problem}", ""]
    problems = [c for c in grade.cells if c.get("status") != PASSED]
    if problems:
        lines += ["## While your notebook ran", "",
                  "Your notebook runs top to bottom before the checks; a cell that fails or hangs is skipped and the rest still counts.", ""]
        lines += [f"- {c.get('error') or ('cell ' + str(c.get('index')) + ': ' + str(c.get('status')))}" for c in problems]
        lines.append("")
    for exercise in grade.exercises:
        passed = sum(c.get("status") == PASSED for c in exercise.checks)
        lines.append(f"## {exercise.exercise} — {exercise.points:g} / {exercise.max_points:g} points")
        lines.append("")
        head = f"{passed}/{len(exercise.checks)} checks passed" + (" — well done!" if exercise.checks and passed == len(exercise.checks) else "")
        lines += [head, ""]
        for check in exercise.checks:
            status = str(check.get("status"))
            line = f"- {_mark(status)} {_display_name(check)}"
            if status != PASSED:
                message = str(check.get("message") or "").replace("\n", " ")
                line += f" — *{status}*" + (f": {message}" if message else "")
            lines.append(line)
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def write_reports(grades: list[Grade], out: Path, meta: dict[str, Any] | None = None) -> None:
    """grades.csv, grades.json and feedback/<learner>/<lab>.md under ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "grades.csv", "w", newline="", encoding="utf-8") as file:
        writer = csv.writer(file)
        writer.writerow(["learner", "lab", "exercise", "points", "max_points"])
        for grade in grades:
            for ex in grade.exercises:
                writer.writerow([grade.learner, grade.lab, ex.exercise, f"{ex.points:g}", f"{ex.max_points:g}"])
    data = {
        **(meta or {}),
        "submissions": [
            {
                "learner": g.learner, "lab": g.lab, "path": g.path, "points": g.points, "max_points": g.max_points,
                "problem": g.problem, "flags": g.flags, "notes": g.notes, "seconds": g.seconds, "attempts": g.attempts,
                "cells": g.cells,
                "exercises": [
                    {"exercise": e.exercise, "points": e.points, "max_points": e.max_points, "checks": [
                        {"name": c.get("name"), "nodeid": c.get("nodeid"), "hidden": bool(c.get("hidden")),
                         "status": c.get("status"), "message": c.get("message", ""), "seconds": c.get("seconds", 0.0)}
                        for c in e.checks
                    ]}
                    for e in g.exercises
                ],
            }
            for g in grades
        ],
    }
    (out / "grades.json").write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    for grade in grades:
        folder = out / "feedback" / _safe_name(grade.learner)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{_safe_name(grade.lab)}.md").write_text(feedback_text(grade), encoding="utf-8")


def summary_table(grades: list[Grade]) -> str:
    rows = [("learner", "lab", "points", "of", "not passed", "flags", "note")]
    for g in grades:
        failing = sum(c.get("status") != PASSED for e in g.exercises for c in e.checks)
        note = g.problem or next((c.get("error", "") for c in g.cells if c.get("status") in (TIMED_OUT, CRASHED)), "")
        rows.append((g.learner, g.lab, f"{g.points:g}", f"{g.max_points:g}", str(failing), str(len(g.flags)), note[:60]))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def grade(
    paths: Iterable[str | Path],
    out: str | Path = "grades",
    check_dirs: Iterable[str | Path] = (),
    jobs: int | None = None,
    limits: Limits | None = None,
    progress: bool = True,
    isolated: bool = True,
) -> list[Grade]:
    """Grade every notebook under ``paths`` and write the reports; raises GradingError when it cannot run.

    ``isolated=False`` grades without the sandbox (``--no-isolation``): only for
    submissions the instructor trusts; the reports say so.
    """
    started = time.monotonic()
    if isolated and (why := isolation.problem()):
        raise GradingError(why)
    check_dirs = [Path(d).resolve() for d in check_dirs]
    for directory in check_dirs:
        if not directory.is_dir():
            raise GradingError(f"--checks {directory}: no such folder")
    out = Path(out).resolve()
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".streamcourse-write-test"
        probe.write_text("ok")
        probe.unlink()
    except OSError as exc:
        raise GradingError(f"cannot write the reports to {out}: {exc.strerror or exc}") from None
    submissions = find_submissions(paths)
    specs, warnings = lab_specs()
    labs = {lab: [e.id for e in exercises] for lab, exercises in specs.items()}
    total = len(submissions)
    done = 0
    tty = progress and sys.stderr.isatty()

    def on_done(record: SubmissionRecord) -> None:
        nonlocal done
        done += 1
        if progress:
            line = f"grading: {done}/{total} submissions, {time.monotonic() - started:.1f} s"
            if tty:
                print("\r" + line, end="" if done < total else "\n", file=sys.stderr, flush=True)
            elif done == total or done % max(1, total // 10) == 0:
                print(line, file=sys.stderr, flush=True)

    records, ready = run_engine(submissions, labs, check_dirs, jobs, limits, isolated, on_done)
    for error in ready.get("collect_errors", []):
        warnings.append(f"checks could not be loaded: {error}")
    if not isolated:
        warnings.append(NOT_ISOLATED)
    grades = score(records, specs, check_dirs)
    meta = {
        "graded_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "seconds": round(time.monotonic() - started, 2),
        "isolated": isolated,
        "warnings": warnings,
        "limits": dataclasses.asdict(limits or Limits()),
    }
    write_reports(grades, out, meta)
    return grades


def main(args: argparse.Namespace) -> int:
    """``python -m streamcourse grade``: 0 when grading ran (whatever the scores), 2 when it could not."""
    started = time.monotonic()
    limits = Limits(timeout=float(args.timeout))
    isolated = not getattr(args, "no_isolation", False)
    try:
        grades = grade(args.submissions, args.out, args.checks, args.jobs, limits, isolated=isolated)
    except GradingError as exc:
        print(f"streamcourse grade: {exc}", file=sys.stderr)
        return 2
    print(summary_table(grades))
    flagged = [g for g in grades if g.flags]
    seconds = time.monotonic() - started
    print(f"\n{len(grades)} submission(s) graded in {seconds:.1f} s; reports in {Path(args.out).resolve()}")
    if not isolated:
        print(f"WARNING: {NOT_ISOLATED}")
    if flagged:
        print(f"{len(flagged)} flagged for the instructor (see 'flags' in grades.json):")
        for g in flagged:
            print(f"  {g.learner}/{g.lab}: {g.flags[0]}" + (f" (+{len(g.flags) - 1} more)" if len(g.flags) > 1 else ""))
    return 0

