"""Prove the checks grade what they claim: ``python -m streamcourse validate``.

For every lab, every check must pass on the solution and fail on the blank lab.
For every known wrong answer (``tests/labs/wrong/<exercise>/<mistake>.py``) the
checks its first line names — ``# rejected by: test_a, test_b`` — must each fail
on it: so a wrong answer that drifted, or a check that quietly stopped catching
it, is found, instead of "some check failed" proving nothing. And every check
must earn its place: either it rejects at least one known wrong answer, or it
says it pins a plain behaviour every answer must have
(``@pytest.mark.behaviour("why")``).
"""

from __future__ import annotations

import multiprocessing
import os
import re
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from streamcourse import notebooks, pacing
from streamcourse.building import LABS_DIR, WRONG_DIR, solutions_of, stale_labs
from streamcourse.checking import SOLUTIONS_DIR, Run, execute_notebook, run_checks
from streamcourse.results import Collector, exercise_of

__all__ = ["Finding", "Verdict", "wrong_answers", "named_catchers", "validate_lab", "validate_wrong_answer", "validate"]

_NAME = r"test_\w+(?:\[[^\]]+\])?"  # a check, with its parameters if it names one case of it
_HEADER = re.compile(rf"^#\s*rejected by:\s*(?P<names>{_NAME}(?:\s*,\s*{_NAME})*)\s*$")


@dataclass
class Finding:
    ok: bool
    text: str


@dataclass
class Verdict:
    """What one validation run found, and what it learned for the whole-course tally."""

    findings: list[Finding]
    exercise: str = ""
    rejecting: set[str] = field(default_factory=set)  # checks (by name, without parameters) that failed on it
    behaviour: dict[str, set[str]] = field(default_factory=dict)  # exercise -> checks marked @behaviour
    checks: dict[str, set[str]] = field(default_factory=dict)  # exercise -> every check of it


def wrong_answers(exercise: str) -> list[Path]:
    return sorted((WRONG_DIR / exercise).glob("*.py"))


def named_catchers(wrong: Path) -> list[str] | None:
    """The checks a wrong answer's first line names, or None when it names none."""
    first = wrong.read_text(encoding="utf-8").split("\n", 1)[0]
    match = _HEADER.match(first)
    return [name.strip() for name in match.group("names").split(",")] if match else None


def _base(name: str) -> str:
    return name.split("[", 1)[0]


def _checking_speed() -> None:
    os.environ.setdefault(pacing.ENV, pacing.CHECKING_SPEED)


def _broken_off(label: str, run: Run) -> Finding | None:
    if run.ran_all:
        return None
    return Finding(
        False, f"{label}: {len(run.collected)} checks collected, {len(run.results)} ran ({run.output[-600:]})"
    )


def validate_lab(solution: Path, labs_dir: Path = LABS_DIR) -> Verdict:
    """Every check of a lab passes on the solution and fails on the blank lab."""
    verdict = Verdict([])
    exercises = [e.id for e in notebooks.exercises(notebooks.read(solution))]
    collector = Collector()
    solved = run_checks(execute_notebook(solution), exercises, collector=collector)
    blank = run_checks(execute_notebook(labs_dir / solution.name), exercises)
    for item in collector.collected:
        exercise = exercise_of(item) or ""
        verdict.checks.setdefault(exercise, set()).add(_base(item.name))
        if item.get_closest_marker("behaviour"):
            verdict.behaviour.setdefault(exercise, set()).add(_base(item.name))
    for run in (solved, blank):
        if run.collect_errors:
            verdict.findings.append(Finding(False, "checks could not be collected: " + "; ".join(run.collect_errors)))
    verdict.findings += [
        Finding(False, f"{e}: has no checks in tests/labs") for e in exercises if e not in verdict.checks
    ]
    for name, run in (("solution", solved), ("blank lab", blank)):
        broken = _broken_off(f"{solution.name} ({name})", run)
        verdict.findings += [broken] if broken else []
    for result in solved.results:
        said = "passes" if result.passed else f"does NOT pass ({result.message})"
        verdict.findings.append(Finding(result.passed, f"{result.nodeid}: {said} on the solution"))
    for result in blank.results:
        said = "fails" if not result.passed else "does NOT fail"
        verdict.findings.append(Finding(not result.passed, f"{result.nodeid}: {said} on the blank lab"))
    return verdict


def validate_wrong_answer(solution: Path, exercise: str, wrong: Path) -> Verdict:
    """The checks this wrong answer's first line names each reject it."""
    label = f"{exercise}: wrong answer {wrong.stem!r}"
    named = named_catchers(wrong)
    if named is None:
        return Verdict(
            [Finding(False, f"{label}: its first line must name its catchers, like '# rejected by: test_x, test_y'")],
            exercise,
        )
    run = run_checks(execute_notebook(solution, [wrong.read_text(encoding="utf-8")]), [exercise])
    if not run.results:  # nothing ran: that proves nothing either way
        return Verdict([Finding(False, f"{label}: no check ran ({run.collect_errors or run.output[-300:]})")], exercise)
    failed = {n for r in run.results if not r.passed for n in (r.name, _base(r.name))}
    ran = {n for r in run.results for n in (r.name, _base(r.name))}
    broken = _broken_off(label, run)
    findings = [broken] if broken else []
    for name in named:
        if name not in ran:
            findings.append(Finding(False, f"{label}: names {name}, which is not a check of {exercise}"))
        elif name not in failed:
            findings.append(Finding(False, f"{label} is NOT rejected by {name}, which its first line names"))
    if not findings:
        findings.append(Finding(True, f"{label} rejected by {', '.join(sorted(n for n in failed if '[' not in n))}"))
    return Verdict(findings, exercise, {_base(n) for n in failed})


def every_check_earns_its_place(verdicts: list[Verdict]) -> list[Finding]:
    checks: dict[str, set[str]] = {}
    behaviour: dict[str, set[str]] = {}
    rejecting: dict[str, set[str]] = {}
    for verdict in verdicts:
        for exercise, names in verdict.checks.items():
            checks.setdefault(exercise, set()).update(names)
        for exercise, names in verdict.behaviour.items():
            behaviour.setdefault(exercise, set()).update(names)
        rejecting.setdefault(verdict.exercise, set()).update(verdict.rejecting)
    idle = [
        (e, n)
        for e, names in sorted(checks.items())
        for n in sorted(names)
        if n not in rejecting.get(e, set()) and n not in behaviour.get(e, set())
    ]
    return [
        Finding(
            False,
            f"{e}: {n} rejects no known wrong answer — add the mistake it exists to catch to "
            f'tests/labs/wrong/{e}/, or mark it @pytest.mark.behaviour("what every answer must do")',
        )
        for e, n in idle
    ]


def validate(
    solutions_dir: Path = SOLUTIONS_DIR, labs_dir: Path = LABS_DIR, jobs: int | None = None, only: Sequence[str] = ()
) -> list[Finding]:
    """All of the above for every lab (or the labs named in ``only``, e.g. ``lab11``) and every known wrong answer.

    Each runs in a fresh process. The checks mostly wait (on sockets, pacing,
    time limits), so by default twice as many run at once as there are CPUs.
    """
    findings = [Finding(False, p) for p in stale_labs(solutions_dir, labs_dir)]
    solutions = [s for s in solutions_of(solutions_dir) if not only or s.name.split("_")[0] in only]
    exercises = {s: [e.id for e in notebooks.exercises(notebooks.read(s))] for s in solutions}
    known = {e for ids in exercises.values() for e in ids}
    for folder in sorted(p for p in WRONG_DIR.glob("*") if p.is_dir()):
        if folder.name not in known and (not only or folder.name.split(".")[0] in only):
            findings.append(Finding(False, f"tests/labs/wrong/{folder.name}: no exercise has that id"))
    context = multiprocessing.get_context("spawn")  # not fork: each notebook starts servers and threads of its own
    with ProcessPoolExecutor(
        jobs or 2 * (os.cpu_count() or 1), mp_context=context, initializer=_checking_speed
    ) as pool:
        tasks = []
        for solution, ids in exercises.items():
            tasks.append(pool.submit(validate_lab, solution, labs_dir))
            for exercise in ids:
                tasks += [pool.submit(validate_wrong_answer, solution, exercise, w) for w in wrong_answers(exercise)]
        verdicts = [task.result() for task in tasks]
    findings += [f for verdict in verdicts for f in verdict.findings]
    return findings + every_check_earns_its_place(verdicts)
