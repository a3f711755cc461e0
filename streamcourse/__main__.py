"""The command line: ``python -m streamcourse build|validate|grade|merge|gradescope|release|llm``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any


def _build(args: argparse.Namespace) -> int:
    from streamcourse import building, checking

    if args.check:
        problems = building.stale_labs()
        for problem in problems:
            print(problem)
        if problems:
            print("run `python -m streamcourse build` to regenerate labs/ from solutions/")
            return 1
        print("labs/ are current")
        return 0
    for path in building.build():
        print(f"wrote {path.relative_to(checking.REPO)}")
    return 0


def _validate(args: argparse.Namespace) -> int:
    from streamcourse import validation

    findings = validation.validate(jobs=args.jobs, only=args.labs)
    bad = [f for f in findings if not f.ok]
    for finding in findings if args.verbose else bad:
        print(("ok   " if finding.ok else "FAIL ") + finding.text)
    print(f"{len(findings) - len(bad)} of {len(findings)} validations hold" + ("" if bad else " — all good"))
    return 1 if bad else 0


def _grade(args: argparse.Namespace) -> int:
    from streamcourse import grading

    return grading.main(args)


def _merge(args: argparse.Namespace) -> int:
    from streamcourse import grading, outdir, shards, untrusted

    try:
        grades = shards.merge([Path(o) for o in args.shards], Path(args.out).resolve())
    except (shards.ShardError, outdir.OutDirError) as exc:
        print(f"streamcourse merge: {untrusted.terminal(exc)}", file=sys.stderr)
        return 2
    print(grading.summary_table(grades))
    print(f"\n{len(grades)} grade(s) from {len(args.shards)} shard(s); reports in {Path(args.out).resolve()}")
    return 0


def _gradescope(args: argparse.Namespace) -> int:
    from streamcourse import gradescope, grading, untrusted

    if args.action == "run":
        return gradescope.run(Path(args.root) if args.root else None)
    try:
        out = gradescope.build(
            Path(args.out), [Path(d) for d in args.checks], args.lab, args.hidden_visibility, args.timeout
        )
    except (grading.GradingError, OSError) as exc:
        print(f"streamcourse gradescope: {untrusted.terminal(exc)}", file=sys.stderr)
        return 2
    print(f"wrote {out}: upload it as the assignment's autograder (Configure Autograder > Zip file upload)")
    return 0


def _release(args: argparse.Namespace) -> int:
    from streamcourse import release

    try:
        names, untracked = release.build(Path(args.out), hidden=[Path(d) for d in args.checks])
    except (release.ReleaseError, OSError) as exc:
        print(f"streamcourse release: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {args.out}: {len(names)} files (lessons, labs, support package, visible checks)")
    if untracked:
        print(
            f"left out {len(untracked)} file(s) git does not track (commit them to release them): {', '.join(untracked)}"
        )
    return 0


def _llm(args: argparse.Namespace) -> int:
    from streamcourse import llm

    print(f"embedded OpenAI-compatible server on http://{args.host}:{args.port}/v1 (Ctrl-C stops it)")
    llm.run(host=args.host, port=args.port)
    return 0


def _add_grade(sub: Any) -> None:  # argparse's sub-parser action has no public type
    grade = sub.add_parser("grade", help="grade submitted lab notebooks")
    grade.add_argument("submissions", nargs="+", help="notebooks, or folders of learners' notebooks")
    grade.add_argument("--checks", action="append", default=[], help="a folder of extra (hidden) checks; repeatable")
    grade.add_argument("--jobs", type=int, default=None, help="submissions graded at once (default: CPU count)")
    grade.add_argument(
        "--timeout",
        type=float,
        default=None,
        help="seconds allowed per submission (default: the lab's own, from its solution, else 60)",
    )
    grade.add_argument("--out", default="grades", help="where grades.csv, grades.json and feedback/ go")
    grade.add_argument(
        "--no-isolation",
        action="store_true",
        help="grade WITHOUT the bubblewrap sandbox (only for submissions you trust; the reports say so)",
    )
    grade.add_argument("--shard", help="grade only share I of N of the learners (e.g. 2/3); combine with merge")
    grade.add_argument("--due", help="due time, ISO 8601 (2025-03-01T23:59+01:00; no zone: this machine's)")
    grade.add_argument("--late-penalty", help="share of a lab's points per started period late, e.g. 10%%/day")
    grade.add_argument("--late-max", help="the most the late penalty takes, e.g. 50%% (default 100%%)")
    grade.add_argument("--extensions", help="CSV of learner,due (or learner,days): later due times")
    grade.add_argument(
        "--roster", help="CSV mapping learners to LMS ids (learner,name,id,sis_user_id,sis_login_id,section,email)"
    )
    grade.add_argument(
        "--gradebook", action="append", choices=["canvas", "moodle"], help="also write an LMS import CSV; repeatable"
    )
    grade.add_argument(
        "--assignment", action="append", default=[], help="LAB=TITLE: the gradebook column for a lab; repeatable"
    )
    grade.set_defaults(run=_grade)


def _add_grading_commands(sub: Any) -> None:  # argparse's sub-parser action has no public type
    """grade, merge, gradescope and release: the instructor's commands."""
    _add_grade(sub)

    merge = sub.add_parser("merge", help="combine the reports of grade --shard runs into one")
    merge.add_argument("shards", nargs="+", help="the --out folders of shards 1..N")
    merge.add_argument("--out", default="grades", help="where the combined reports go")
    merge.set_defaults(run=_merge)

    gradescope = sub.add_parser("gradescope", help="Gradescope autograder: build its zip, or run inside it")
    gradescope.add_argument("action", choices=["build", "run"])
    gradescope.add_argument("--out", default="autograder.zip", help="build: the zip to write")
    gradescope.add_argument(
        "--lab", action="append", default=[], help="build: a lab this assignment grades; repeatable (default all)"
    )
    gradescope.add_argument(
        "--checks", action="append", default=[], help="build: a folder of hidden checks; repeatable"
    )
    gradescope.add_argument(
        "--hidden-visibility",
        default="after_published",
        choices=["hidden", "after_due_date", "after_published"],
        help="build: when learners see hidden checks' results",
    )
    gradescope.add_argument("--timeout", type=float, default=60.0, help="build: seconds allowed per submission")
    gradescope.add_argument("--root", help="run: the autograder folder (default /autograder)")
    gradescope.set_defaults(run=_gradescope)

    release = sub.add_parser("release", help="write the zip learners receive (no solutions, no hidden checks)")
    release.add_argument("out", help="the zip to write, e.g. release.zip")
    release.add_argument(
        "--checks", action="append", default=[], help="hidden checks that must not be in it; repeatable"
    )
    release.set_defaults(run=_release)


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="python -m streamcourse", description=__doc__)
    sub = top.add_subparsers(dest="command", required=True)

    build = sub.add_parser("build", help="write labs/ from solutions/")
    build.add_argument("--check", action="store_true", help="only report stale labs (exit 1 if any)")
    build.set_defaults(run=_build)

    validate = sub.add_parser("validate", help="prove every check fails on the blank lab and passes on the solution")
    validate.add_argument("labs", nargs="*", help="only these labs, e.g. lab05 lab11 (default: all)")
    validate.add_argument("-v", "--verbose", action="store_true", help="show the validations that hold too")
    validate.add_argument(
        "--jobs", type=int, default=None, help="notebooks validated at once (default: twice the CPU count)"
    )
    validate.set_defaults(run=_validate)

    _add_grading_commands(sub)

    llm = sub.add_parser("llm", help="run the embedded OpenAI-compatible server")
    llm.add_argument("--host", default="127.0.0.1")
    llm.add_argument("--port", type=int, default=8000)
    llm.set_defaults(run=_llm)
    return top


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    return int(args.run(args))


if __name__ == "__main__":
    sys.exit(main())
