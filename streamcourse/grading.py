"""The instructor's autograder: ``python -m streamcourse grade SUBMISSIONS...``.

How a class is graded, one module per step:

1. **In** (``intake``): notebooks, folders, plain zips and the Canvas, Moodle and
   Gradescope download zips; learners named uniquely for the whole class.
2. **Share** (``shards``): with ``--shard I/N``, only this machine's learners.
3. **Run** (``launch.run_engine``, the one seam to the engine): one record per
   submission, each notebook run in a bubblewrap sandbox and checked by a
   trusted checker (``streamcourse.engine``, ``streamcourse.isolation``). If the
   engine dies mid-class it is started once more for the submissions it had not
   finished; any still missing get a "not graded: ..." result, so the class's
   reports are always written.
4. **Score** (``scoring``): points from ``solutions/``, hidden checks in words only.
5. **Policy** (``policy``): the late penalty, from the time the input carries.
6. **Out** (``reports``, ``gradebook``, ``outdir``): grades.csv, grades.json, Markdown and
   HTML feedback, Canvas/Moodle gradebooks, written through no link.

``grade`` raises ``GradingError`` only when grading itself cannot run (no
submissions, unusable options, OUT unwritable, an engine that graded nothing);
``main`` turns that into exit status 2 and everything else into 0.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import hashlib
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from streamcourse import gradebook, intake, isolation, policy, shards, untrusted
from streamcourse.feedback import feedback_text
from streamcourse.intake import SubmissionFile, find_submissions
from streamcourse.launch import run_engine
from streamcourse.outdir import OutDirError, ReportDir
from streamcourse.records import Limits, SubmissionRecord, submission_record
from streamcourse.reports import summary_table, write_reports
from streamcourse.results import (  # noqa: F401 - re-exported: the statuses are what grades.json reports
    CHECK_BROKE,
    CRASHED,
    ERROR,
    FAILED,
    HIDDEN_GENERIC,
    NOT_GRADED,
    NOT_RUN,
    PASSED,
    TIMED_OUT,
)
from streamcourse.scoring import (
    ExerciseSpec,
    Grade,
    Identity,
    best_per_lab,
    grade_records,
    lab_specs,
    lab_timeouts,
    score,
)

__all__ = [
    "GradingError",
    "Limits",
    "SubmissionFile",
    "ExerciseSpec",
    "Grade",
    "GradeOptions",
    "find_submissions",
    "lab_specs",
    "run_engine",
    "score",
    "write_reports",
    "feedback_text",
    "summary_table",
    "grade",
    "main",
    "NOT_ISOLATED",
]

NOT_ISOLATED = "graded WITHOUT isolation (--no-isolation): learner code ran outside the sandbox, as the instructor"

Engine = Callable[..., tuple[list[Any], dict[str, Any]]]
ENGINE_RUNS = 2  # the first run, and one restart for what a dying engine left


class GradingError(RuntimeError):
    """Grading itself cannot run (no submissions, unwritable output, engine failure)."""


@dataclass
class GradeOptions:
    """Everything ``grade`` can do beyond folders in, reports out (the command line's extra options)."""

    late: policy.LatePolicy | None = None
    roster: gradebook.Roster | None = None
    gradebooks: tuple[str, ...] = ()  # "canvas", "moodle"
    assignments: dict[str, str] = field(default_factory=dict)  # lab -> the LMS's assignment column title
    shard: shards.Shard | None = None
    specs: dict[str, list[ExerciseSpec]] | None = None  # default: from solutions/

    def config(self, check_dirs: list[Path]) -> dict[str, Any]:
        """What shards must share to be merged (kept in grades.json)."""
        late = self.late and {
            "due": self.late.due.isoformat(),
            "rate": self.late.rate,
            "period": self.late.period.total_seconds(),
            "cap": self.late.cap,
            "extensions": {k: v.isoformat() for k, v in sorted(self.late.extensions.items())},
        }
        return {
            "checks": [_digest(d) for d in check_dirs],
            "late_policy": late or None,
            "gradebooks": sorted(self.gradebooks),
            "assignments": dict(sorted(self.assignments.items())),
        }


def _digest(folder: Path) -> str:
    """The hidden checks' content (not their path, which differs between machines)."""
    digest = hashlib.sha256()
    for file in sorted(p for p in folder.rglob("*.py") if "__pycache__" not in p.parts):
        digest.update(file.relative_to(folder).as_posix().encode() + b"\0" + file.read_bytes())
    return digest.hexdigest()


# --------------------------------------------------------------------------- running the engine, surviving its death


class _Progress:
    def __init__(self, total: int, show: bool) -> None:
        self.total, self.done, self.show = total, 0, show
        self.started = time.monotonic()
        self.tty = show and sys.stderr.isatty()

    def step(self) -> None:
        self.done += 1
        if not self.show:
            return
        line = f"grading: {self.done}/{self.total} submissions, {time.monotonic() - self.started:.1f} s"
        if self.tty:
            print("\r" + line, end="" if self.done < self.total else "\n", file=sys.stderr, flush=True)
        elif self.done == self.total or self.done % max(1, self.total // 10) == 0:
            print(line, file=sys.stderr, flush=True)


def not_graded(path: str, learner: str, lab: str | None, why: str) -> SubmissionRecord:
    """The record of a submission the engine never finished: it says so, and what to do."""
    text = f"not graded: {why}. Nothing was lost: grade this notebook again."
    return SubmissionRecord(-1, path, learner, lab, unreadable=text, flags=[text], attempts=0, ended=NOT_GRADED)


def _key(record: SubmissionRecord, todo: list[SubmissionFile]) -> str:
    """Which submission a record is for: by path, else by its index in what was sent ('' if neither)."""
    paths = [str(s.path) for s in todo]
    if record.path in paths:
        return record.path
    return paths[record.id] if 0 <= record.id < len(paths) else ""


def _run_class(
    engine: Engine,
    subs: list[SubmissionFile],
    labs: dict[str, list[str]],
    check_dirs: list[Path],
    jobs: int | None,
    limits: Limits | None,
    isolated: bool,
    progress: _Progress,
    warnings: list[str],
) -> tuple[list[SubmissionRecord], bool]:
    """A record for every submission; True when the engine graded at least one itself."""
    done: dict[str, SubmissionRecord] = {}
    failure = ""
    for run in range(ENGINE_RUNS):
        todo = [s for s in subs if str(s.path) not in done]
        if not todo:
            break

        def on_done(raw: Any, todo: list[SubmissionFile] = todo) -> None:
            record = submission_record(raw)
            key = _key(record, todo)
            if key and key not in done:
                done[key] = record
                progress.step()

        try:
            records, ready = engine(todo, labs, check_dirs, jobs, limits, isolated, on_done)
            for raw in records:
                on_done(raw)
            warnings += [f"checks could not be loaded: {e}" for e in ready.get("collect_errors", [])]
        except Exception as exc:  # noqa: BLE001 - whatever killed the engine, the class still gets its reports
            failure = untrusted.terminal(exc) or type(exc).__name__
            left = len([s for s in todo if str(s.path) not in done])
            again = "; it was started again for them" if run + 1 < ENGINE_RUNS else ""
            warnings.append(f"the grading engine stopped ({failure}) with {left} submission(s) not finished{again}")
    for sub in subs:
        if str(sub.path) not in done:
            hints = intake.lab_hints(sub.path)
            done[str(sub.path)] = not_graded(
                str(sub.path),
                sub.learner,
                min(hints) if len(hints) == 1 else None,
                f"the grading engine stopped ({failure})",
            )
            progress.step()
    engine_graded = any(r.ended != NOT_GRADED for r in done.values())
    return [done[str(s.path)] for s in subs], engine_graded


# --------------------------------------------------------------------------- one class


def _grades(
    records: list[SubmissionRecord],
    subs: list[SubmissionFile],
    specs: dict[str, list[ExerciseSpec]],
    check_dirs: list[Path],
    options: GradeOptions,
) -> list[Grade]:
    by_path = {str(s.path): s for s in subs}
    grades = grade_records(records, specs, check_dirs)
    for grade in grades:
        sub = by_path[grade.path]
        grade.learner, grade.path = sub.learner, sub.origin
        grade.identity = Identity(sub.lms, sub.display, sub.lms_id, sub.email)
        if options.late and grade.exercises:
            grade.late = policy.assess(options.late, sub, grade.max_points)
    grades = best_per_lab(grades)
    if options.roster:
        gradebook.apply_roster(grades, options.roster)
    return grades


def _check_dirs(check_dirs: Iterable[str | Path]) -> list[Path]:
    dirs = [Path(d).resolve() for d in check_dirs]
    for directory in dirs:
        if not directory.is_dir():
            raise GradingError(f"--checks {directory}: no such folder")
    return dirs


def grade(
    paths: Iterable[str | Path],
    out: str | Path = "grades",
    check_dirs: Iterable[str | Path] = (),
    jobs: int | None = None,
    limits: Limits | None = None,
    progress: bool = True,
    options: GradeOptions | None = None,
    engine: Engine | None = None,
    isolated: bool = True,
) -> list[Grade]:
    """Grade every notebook under ``paths`` and write the reports; raises GradingError when it cannot run.

    ``isolated=False`` grades without the sandbox (``--no-isolation``): only for
    submissions the instructor trusts; the reports say so.
    """
    started = time.monotonic()
    options = options or GradeOptions()
    if isolated and engine is None and (why := isolation.problem()):
        raise GradingError(why)
    dirs = _check_dirs(check_dirs)
    paths = list(paths)
    try:
        target = ReportDir(Path(os.path.abspath(out)))  # not resolve(): a link as OUT must be seen, and refused
    except OutDirError as exc:
        raise GradingError(str(exc)) from None
    with target, tempfile.TemporaryDirectory(prefix="streamcourse-intake-") as work:
        try:
            found = intake.collect(paths, Path(work))
        except intake.IntakeError as exc:
            raise GradingError(str(exc)) from None
        specs, warnings = (options.specs, []) if options.specs is not None else lab_specs()
        if limits is None:  # no --timeout: each lab's own, where its solution sets one
            limits = Limits(lab_timeouts=lab_timeouts() if options.specs is None else {})
        subs = options.shard.select(found.submissions) if options.shard else found.submissions
        if not isolated:
            warnings.append(NOT_ISOLATED)
        records, engine_graded = _run_class(
            engine or run_engine,
            subs,
            {lab: [e.id for e in ex] for lab, ex in specs.items()},
            dirs,
            jobs,
            limits,
            isolated,
            _Progress(len(subs), progress),
            warnings,
        )
        grades = _grades(records, subs, specs, dirs, options)
        meta = {
            "graded_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "seconds": round(time.monotonic() - started, 2),
            "isolated": isolated,
            "warnings": warnings,
            "limits": dataclasses.asdict(limits or Limits()),
            "intake": found.notes,
            "config": options.config(dirs),
        }
        if options.shard:
            meta["shard"] = {"index": options.shard.index, "of": options.shard.of}
        write_reports(grades, target, meta)
    if subs and not engine_graded:
        raise GradingError(
            f"the grading engine graded nothing ({warnings[-1]}); the reports in {target.out} "
            "list every submission as not graded"
        )
    return grades


# --------------------------------------------------------------------------- the command line


def options_from_args(args: argparse.Namespace) -> GradeOptions:
    """``GradeOptions`` from ``grade``'s command line (options missing from ``args`` keep their defaults)."""
    options = GradeOptions(gradebooks=tuple(getattr(args, "gradebook", None) or ()))
    for pair in getattr(args, "assignment", None) or []:
        lab, sep, title = pair.partition("=")
        if not sep or not lab.strip() or not title.strip():
            raise GradingError(f"--assignment {pair!r}: give LAB=TITLE, e.g. --assignment lab01='Lab 1 (4242)'")
        options.assignments[lab.strip()] = title.strip()
    if getattr(args, "shard", None):
        options.shard = shards.Shard.parse(args.shard)
    if getattr(args, "roster", None):
        options.roster = gradebook.load_roster(Path(args.roster))
    due, penalty = getattr(args, "due", None), getattr(args, "late_penalty", None)
    if bool(due) != bool(penalty):
        raise GradingError(
            "--due and --late-penalty go together: give both (e.g. --due 2025-03-01T23:59 --late-penalty 10%/day)"
        )
    if due and penalty:
        when = policy.parse_due(due)
        rate, period = policy.parse_penalty(penalty)
        cap = policy.parse_share(args.late_max, "--late-max") if getattr(args, "late_max", None) else 1.0
        extensions = policy.load_extensions(Path(args.extensions), when) if getattr(args, "extensions", None) else {}
        options.late = policy.LatePolicy(when, rate, period, cap, extensions)
    return options


def _print_outcome(grades: list[Grade], out: Path, seconds: float) -> None:
    print(summary_table(grades))
    print(f"\n{len(grades)} submission(s) graded in {seconds:.1f} s; reports in {out}")
    missing = [g for g in grades if g.problem.startswith("not graded")]
    if missing:
        print(
            f"{len(missing)} NOT graded (the engine stopped): "
            + ", ".join(untrusted.terminal(g.learner) for g in missing[:10])
        )
    flagged = [g for g in grades if g.flags]
    if flagged:
        print(f"{len(flagged)} flagged for the instructor (see 'flags' in grades.json):")
        for g in flagged:
            more = f" (+{len(g.flags) - 1} more)" if len(g.flags) > 1 else ""
            print(
                f"  {untrusted.terminal(g.learner)}/{untrusted.terminal(g.lab)}: {untrusted.terminal(g.flags[0])[:160]}{more}"
            )
    data = shards.read_run(out)
    if data.get("isolated") is False:
        print(f"WARNING: {NOT_ISOLATED}")
    for line in data.get("intake", []) + [w for w in data.get("warnings", []) if w != NOT_ISOLATED]:
        print("note: " + untrusted.terminal(line)[:200])


def main(args: argparse.Namespace) -> int:
    """``python -m streamcourse grade``: 0 when grading ran (whatever the scores), 2 when it could not."""
    started = time.monotonic()
    limits = Limits(timeout=float(args.timeout)) if args.timeout is not None else None
    try:
        options = options_from_args(args)
        grades = grade(
            args.submissions,
            args.out,
            args.checks,
            args.jobs,
            limits,
            options=options,
            isolated=not getattr(args, "no_isolation", False),
        )
    except (GradingError, policy.PolicyError, gradebook.RosterError, shards.ShardError) as exc:
        print(f"streamcourse grade: {untrusted.terminal(exc)}", file=sys.stderr)
        return 2
    _print_outcome(grades, Path(args.out).resolve(), time.monotonic() - started)
    return 0
