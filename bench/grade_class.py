"""Grade a generated class of lab01 submissions and compare with a fresh Python per notebook.

    .venv/bin/python bench/grade_class.py [--learners 100] [--jobs N] [--timeout S]

The class mixes right answers, the known wrong answers of tests/labs/wrong and
every hostile kind of tests/grading_fixtures/hostile.py (endless loops, exits,
memory bombs, floods of output, broken JSON, tampering...). It prints the
throughput, the per-submission median, and — measured in the same run — how
long the simple approach takes per notebook: a fresh Python that imports the
course, executes the notebook and runs its checks (what a per-notebook kernel
costs, as in nbgrader's autograde).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests" / "grading_fixtures"))

import hostile  # noqa: E402

from streamcourse import grading  # noqa: E402
from streamcourse.scoring import lab_timeouts  # noqa: E402

FRESH = """
import sys
from streamcourse import checking
namespace = checking.execute_notebook(sys.argv[1])
run = checking.run_checks(namespace, ["lab01.read_chunks", "lab01.batched"])
print(sum(r.passed for r in run.results))
"""


def make_class(root: Path, learners: int, out: Path) -> dict[str, str]:
    """Learner folder -> kind. Hostile kinds once each, about a fifth wrong, the rest right."""
    kinds: dict[str, str] = {}
    makers = {**{f"hostile_{k}": m for k, m in hostile.HOSTILE.items()}, "hostile_tamper": hostile.tamper(out)}
    for name, make in list(makers.items())[:learners]:
        make(root / name)
        kinds[name] = "hostile"
    wrong = hostile.WRONG_ANSWERS
    n = 0
    while len(kinds) < learners:
        name = f"learner{n:03d}"
        if n % 4 == 0:
            hostile.wrong(wrong[(n // 4) % len(wrong)])(root / name)
            kinds[name] = "wrong"
        else:
            hostile.right(root / name)
            kinds[name] = "right"
        n += 1
    return kinds


def runner_start(notebook: Path, isolated: bool, times: int) -> list[float]:
    """Seconds from starting a runner to its notebook's cells all run, with or without the sandbox."""
    from streamcourse.checker import Checker, shared_folder

    took = []
    for _ in range(times):
        root = Path(tempfile.mkdtemp(prefix="runner-start-"))
        checker = Checker(notebook, shared_folder(root), grading.Limits(), isolated, 0, lambda event: None)
        started = time.perf_counter()
        assert checker.start_runner(), "the runner did not start"
        took.append(time.perf_counter() - started)
        checker.runner.stop()
        shutil.rmtree(root, ignore_errors=True)
    return took


def fresh_python_per_notebook(paths: list[Path]) -> list[float]:
    times = []
    for path in paths:
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", FRESH, str(path)], check=True, capture_output=True, cwd=REPO)
        times.append(time.perf_counter() - started)
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--learners", type=int, default=100)
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument(
        "--timeout", type=float, default=None, help="seconds per submission (default: lab01's own, as grade uses it)"
    )
    parser.add_argument("--baseline", type=int, default=6, help="notebooks run with a fresh Python each, for the ratio")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="grade-class-"))
    try:
        out = work / "grades"
        kinds = make_class(work / "class", args.learners, out)
        counts = {k: list(kinds.values()).count(k) for k in ("right", "wrong", "hostile")}
        chosen = grading.Limits(timeout=args.timeout) if args.timeout else None
        limits = chosen or grading.Limits(lab_timeouts=lab_timeouts()).for_lab("lab01")
        print(
            f"class: {args.learners} learners of lab01 — {counts['right']} right, {counts['wrong']} wrong, "
            f"{counts['hostile']} hostile; {args.jobs} jobs on {os.cpu_count()} CPUs, {limits.timeout:g} s each"
        )

        started = time.perf_counter()
        grades = grading.grade([work / "class"], out, jobs=args.jobs, limits=chosen, progress=True)
        wall = time.perf_counter() - started
        import json

        data = json.loads((out / "grades.json").read_text())
        seconds = {s["learner"]: s["seconds"] for s in data["submissions"]}
        per = sorted(seconds.values())
        calm = [seconds[name] for name, kind in kinds.items() if kind != "hostile"]
        wrong_scores = [g.points for g in grades if kinds.get(g.learner) == "wrong"]
        right_ok = all(g.points == hostile.FULL for g in grades if kinds.get(g.learner) == "right")
        print(
            f"graded {len(grades)} submissions in {wall:.1f} s (engine start-up included): "
            f"{len(grades) / wall:.1f} submissions/s"
        )
        print(
            f"per submission: median {statistics.median(per):.2f} s (right and wrong only: {statistics.median(calm):.2f} s), "
            f"slowest {per[-1]:.1f} s (hostile)"
        )
        hostile_time = sum(seconds[name] for name, kind in kinds.items() if kind == "hostile")
        print(
            f"the {counts['hostile']} hostile submissions took {hostile_time:.0f} s of the {args.jobs} slots' time "
            f"(limits: {limits.cell_seconds:g} s per cell, {limits.check_seconds:.1f} s per check, {limits.timeout:g} s in all); "
            f"the other {len(calm)} took {sum(calm):.0f} s"
        )
        print(
            f"right answers all full marks: {right_ok}; wrong answers scored {min(wrong_scores):g}–{max(wrong_scores):g} of 10"
        )

        sample = [work / "class" / name / hostile.NAME for name, kind in kinds.items() if kind == "right"][
            : args.baseline
        ]
        boxed = statistics.median(runner_start(sample[0], True, 10))
        bare = statistics.median(runner_start(sample[0], False, 10))
        print(
            f"isolation: a runner in its bubblewrap sandbox is ready (cells run) in {boxed * 1000:.0f} ms median, "
            f"{bare * 1000:.0f} ms without the sandbox: {(boxed - bare) * 1000:.0f} ms of isolation per runner"
        )
        fresh = fresh_python_per_notebook(sample)
        fresh_median = statistics.median(fresh)
        per_notebook = wall / len(grades)
        print(
            f"fresh Python per notebook (import + execute + checks, one at a time): median {fresh_median:.2f} s "
            f"over {len(fresh)} notebooks"
        )
        print(
            f"side by side: wall time per notebook {per_notebook:.2f} s graded here vs {fresh_median:.2f} s fresh "
            f"— {fresh_median / per_notebook:.1f}x faster; a right/wrong notebook's own time {statistics.median(calm):.2f} s "
            f"vs {fresh_median:.2f} s — {fresh_median / statistics.median(calm):.1f}x"
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
