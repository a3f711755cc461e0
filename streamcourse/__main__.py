"""The command line: ``python -m streamcourse build|validate|grade|llm``."""

from __future__ import annotations

import argparse
import sys


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
    from streamcourse import building

    findings = building.validate(jobs=args.jobs)
    bad = [f for f in findings if not f.ok]
    for finding in findings if args.verbose else bad:
        print(("ok   " if finding.ok else "FAIL ") + finding.text)
    print(f"{len(findings) - len(bad)} of {len(findings)} validations hold" + ("" if bad else " — all good"))
    return 1 if bad else 0


def _grade(args: argparse.Namespace) -> int:
    from streamcourse import grading

    return grading.main(args)


def _llm(args: argparse.Namespace) -> int:
    from streamcourse import llm

    print(f"embedded OpenAI-compatible server on http://{args.host}:{args.port}/v1 (Ctrl-C stops it)")
    llm.run(host=args.host, port=args.port)
    return 0


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="python -m streamcourse", description=__doc__)
    sub = top.add_subparsers(dest="command", required=True)

    build = sub.add_parser("build", help="write labs/ from solutions/")
    build.add_argument("--check", action="store_true", help="only report stale labs (exit 1 if any)")
    build.set_defaults(run=_build)

    validate = sub.add_parser("validate", help="prove every check fails on the blank lab and passes on the solution")
    validate.add_argument("-v", "--verbose", action="store_true", help="show the validations that hold too")
    validate.add_argument(
        "--jobs", type=int, default=None, help="notebooks validated at once (default: twice the CPU count)"
    )
    validate.set_defaults(run=_validate)

    grade = sub.add_parser("grade", help="grade submitted lab notebooks")
    grade.add_argument("submissions", nargs="+", help="notebooks, or folders of learners' notebooks")
    grade.add_argument("--checks", action="append", default=[], help="a folder of extra (hidden) checks; repeatable")
    grade.add_argument("--jobs", type=int, default=None, help="submissions graded at once (default: CPU count)")
    grade.add_argument("--timeout", type=float, default=60.0, help="seconds allowed per submission")
    grade.add_argument("--out", default="grades", help="where grades.csv, grades.json and feedback/ go")
    grade.set_defaults(run=_grade)

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
