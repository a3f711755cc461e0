"""Make ``labs/`` (and the README's course map) from ``solutions/``, and prove the checks grade what they claim to.

The README's Binder badge is generated too, from the one place that says where
the course lives: ``[tool.streamcourse] repository`` in ``pyproject.toml``.

``solutions/`` is the single source: ``build`` replaces every region between
``# BEGIN SOLUTION`` and ``# END SOLUTION`` with a stub. Inside a function the
stub is ``raise NotImplementedError`` (the lab still runs top to bottom; the
check says "not written yet"); at the top level of a cell it is ``...``, so the
name the exercise should define stays undefined and the check says which.

``validate`` runs every check against the solution (all must pass), the blank
lab (all must fail) and each known wrong answer kept in
``tests/labs/wrong/<exercise>/<mistake>.py`` (at least one check of that
exercise must fail).
"""

from __future__ import annotations

import copy
import multiprocessing
import os
import re
import tomllib
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import nbformat

from streamcourse import notebooks, pacing
from streamcourse.checking import CHECKS_DIR, REPO, SOLUTIONS_DIR, execute_notebook, run_checks

__all__ = ["LABS_DIR", "WRONG_DIR", "stub_solutions", "build_lab", "build", "course_map", "repository", "binder_url",
           "binder_badge", "stale_labs", "validate"]

LABS_DIR = REPO / "labs"
LESSONS_DIR = REPO / "notebooks"
README = REPO / "README.md"
PYPROJECT = REPO / "pyproject.toml"
WRONG_DIR = CHECKS_DIR / "wrong"

_BEGIN = re.compile(r"^(?P<indent>[ \t]*)# BEGIN SOLUTION\s*$")
_END = re.compile(r"^[ \t]*# END SOLUTION\s*$")


class BuildError(ValueError):
    """A solution notebook that cannot become a lab; the message names the cell."""


def stub_solutions(source: str, where: str = "cell") -> str:
    """Replace each solution region of a cell with its stub."""
    out: list[str] = []
    inside: str | None = None
    for line in source.splitlines():
        begin = _BEGIN.match(line)
        if begin:
            if inside is not None:
                raise BuildError(f"{where}: '# BEGIN SOLUTION' inside another solution region")
            inside = begin["indent"]
            out.append(f"{inside}# YOUR CODE HERE")
            out.append(f"{inside}raise NotImplementedError" if inside else "...")
        elif _END.match(line):
            if inside is None:
                raise BuildError(f"{where}: '# END SOLUTION' without '# BEGIN SOLUTION'")
            inside = None
        elif inside is None:
            out.append(line)
    if inside is not None:
        raise BuildError(f"{where}: '# BEGIN SOLUTION' is never closed with '# END SOLUTION'")
    return "\n".join(out)


def _clean(cell: nbformat.NotebookNode) -> None:
    if cell.cell_type == "code":
        cell.outputs = []
        cell.execution_count = None


def build_lab(solution: Path) -> nbformat.NotebookNode:
    """The lab notebook made from one solution notebook."""
    nb = copy.deepcopy(notebooks.read(solution))
    expected_lab = solution.name[:5]
    if notebooks.lab_of(nb) != expected_lab:
        raise BuildError(f"{solution.name}: metadata.streamcourse.lab must be {expected_lab!r}")
    for index, cell in enumerate(nb.cells):
        _clean(cell)
        where = f"{solution.name} cell {index}"
        if cell.cell_type != "code":
            continue
        has_region = "# BEGIN SOLUTION" in cell.source
        exercise = notebooks.cell_info(cell).get("exercise")
        if exercise and not has_region:
            raise BuildError(f"{where}: exercise {exercise} has no '# BEGIN SOLUTION' region")
        if has_region and not exercise:
            raise BuildError(f"{where}: a solution region outside an exercise cell (add metadata.streamcourse.exercise)")
        if exercise and not str(exercise).startswith(expected_lab + "."):
            raise BuildError(f"{where}: exercise id {exercise!r} must start with {expected_lab}.")
        if has_region:
            cell.source = stub_solutions(cell.source, where)
    return nb


def _solutions(solutions_dir: Path) -> list[Path]:
    return sorted(solutions_dir.glob("lab[0-9][0-9]_*.ipynb"))


def _text(nb: nbformat.NotebookNode) -> str:
    return nbformat.writes(nb) + "\n"


def _title(path: Path) -> str:
    """A notebook's title: the first markdown heading, without its number prefix."""
    for cell in notebooks.read(path).cells:
        for line in cell.source.splitlines():
            if cell.cell_type == "markdown" and line.startswith("# "):
                return re.sub(r"^(Lesson|Lab)?\s*\d+\s*[—:-]\s*", "", line[2:]).strip()
    return path.stem


def course_map(lessons_dir: Path = LESSONS_DIR, solutions_dir: Path = SOLUTIONS_DIR) -> str:
    """The README's table of lessons and labs, made from the notebooks themselves."""
    labs = {s.name[3:5]: s for s in _solutions(solutions_dir)}
    rows = ["| # | lesson | lab | exercises |", "|---|---|---|---|"]
    for lesson in sorted(lessons_dir.glob("[0-9][0-9]_*.ipynb")):
        number = lesson.name[:2]
        lab = labs.get(number)
        lab_cell = f"[{lab.stem}](labs/{lab.name})" if lab else "—"
        exercises = ", ".join(f"`{e.id}`" for e in notebooks.exercises(notebooks.read(lab))) if lab else ""
        rows.append(f"| {number} | [{_title(lesson)}](notebooks/{lesson.name}) | {lab_cell} | {exercises} |")
    return "\n".join(rows)


def repository() -> str:
    """Where the course lives on GitHub, ``owner/name``: the one setting, in ``pyproject.toml``."""
    return tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))["tool"]["streamcourse"]["repository"]


def binder_url(repo: str | None = None) -> str:
    """mybinder.org's launch link for the course's main branch, opening the first lesson in JupyterLab."""
    first = sorted(LESSONS_DIR.glob("[0-9][0-9]_*.ipynb"))[0]
    return f"https://mybinder.org/v2/gh/{repo or repository()}/main?urlpath=lab/tree/notebooks/{first.name}"


def binder_badge(repo: str | None = None) -> str:
    return f"[![Binder](https://mybinder.org/badge_logo.svg)]({binder_url(repo)})"


def _replace_between(text: str, name: str, body: str, where: str) -> str:
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    if start not in text or end not in text:
        raise BuildError(f"{where} needs the markers {start} and {end} around its {name}")
    head, rest = text.split(start, 1)
    return head + start + "\n" + body + "\n" + end + rest.split(end, 1)[1]


def _readme_with_map(readme: Path) -> str:
    """The README with its generated parts (Binder badge, course map) made afresh."""
    text = _replace_between(readme.read_text(encoding="utf-8"), "binder-badge", binder_badge(), readme.name)
    return _replace_between(text, "course-map", course_map(), readme.name)


def build(solutions_dir: Path = SOLUTIONS_DIR, labs_dir: Path = LABS_DIR) -> list[Path]:
    """Write ``labs/`` from ``solutions/`` and the README's course map; returns the files written."""
    labs_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for solution in _solutions(solutions_dir):
        target = labs_dir / solution.name
        target.write_text(_text(build_lab(solution)), encoding="utf-8")
        written.append(target)
    README.write_text(_readme_with_map(README), encoding="utf-8")
    return written + [README]


def stale_labs(solutions_dir: Path = SOLUTIONS_DIR, labs_dir: Path = LABS_DIR) -> list[str]:
    """What is out of date in ``labs/``, one line each (empty when all are current)."""
    problems = []
    expected = {s.name: s for s in _solutions(solutions_dir)}
    for name, solution in expected.items():
        target = labs_dir / name
        if not target.exists():
            problems.append(f"labs/{name} is missing")
        elif target.read_text(encoding="utf-8") != _text(build_lab(solution)):
            problems.append(f"labs/{name} is stale")
    for lab in sorted(labs_dir.glob("*.ipynb")):
        if lab.name not in expected:
            problems.append(f"labs/{lab.name} has no solution in solutions/")
    if README.read_text(encoding="utf-8") != _readme_with_map(README):
        problems.append("README.md's course map or Binder badge is stale")
    return problems


# --------------------------------------------------------------------------- validate


@dataclass
class Finding:
    ok: bool
    text: str


def wrong_answers(exercise: str) -> list[Path]:
    return sorted((WRONG_DIR / exercise).glob("*.py"))


def _checking_speed() -> None:
    os.environ.setdefault(pacing.ENV, pacing.CHECKING_SPEED)


def validate_lab(solution: Path, labs_dir: Path = LABS_DIR) -> list[Finding]:
    """Every check of a lab passes on the solution and fails on the blank lab."""
    findings: list[Finding] = []
    exercises = [e.id for e in notebooks.exercises(notebooks.read(solution))]
    solved = run_checks(execute_notebook(solution), exercises)
    blank = run_checks(execute_notebook(labs_dir / solution.name), exercises)
    for run in (solved, blank):
        if run.collect_errors:
            findings.append(Finding(False, "checks could not be collected: " + "; ".join(run.collect_errors)))
    checked = {r.exercise for r in solved.results}
    for exercise in exercises:
        if exercise not in checked:
            findings.append(Finding(False, f"{exercise}: has no checks in tests/labs"))
    for name, run in (("solution", solved), ("blank lab", blank)):
        if not run.ran_all:
            findings.append(Finding(False, f"{solution.name} ({name}): {len(run.collected)} checks collected, {len(run.results)} ran ({run.output[-600:]})"))
    for result in solved.results:
        ok = result.outcome == "passed"
        findings.append(Finding(ok, f"{result.nodeid}: {'passes' if ok else 'does NOT pass'} on the solution" + ("" if ok else f" ({result.message})")))
    for result in blank.results:
        ok = result.outcome != "passed"
        findings.append(Finding(ok, f"{result.nodeid}: {'fails' if ok else 'does NOT fail'} on the blank lab"))
    return findings


def validate_wrong_answer(solution: Path, exercise: str, wrong: Path) -> list[Finding]:
    """At least one check of ``exercise`` rejects this known wrong answer."""
    run = run_checks(execute_notebook(solution, [wrong.read_text(encoding="utf-8")]), [exercise])
    label = f"{exercise}: wrong answer {wrong.stem!r}"
    if not run.results:  # nothing ran: that proves nothing either way
        return [Finding(False, f"{label}: no check ran ({run.collect_errors or run.output[-300:]})")]
    caught = [r.name for r in run.results if r.outcome != "passed"]
    if caught:
        return [Finding(True, f"{label} rejected by {', '.join(caught)}")]
    if not run.ran_all:  # the missing checks might have caught it
        return [Finding(False, f"{label}: only {len(run.results)} of {len(run.collected)} checks ran ({run.output[-600:]})")]
    return [Finding(False, f"{label} is NOT rejected by any check")]


def validate(solutions_dir: Path = SOLUTIONS_DIR, labs_dir: Path = LABS_DIR, jobs: int | None = None) -> list[Finding]:
    """All of the above for every lab and every known wrong answer, each in a fresh process.

    The checks mostly wait (on sockets, pacing, time limits), so by default
    twice as many run at once as there are CPUs.
    """
    findings = [Finding(False, p) for p in stale_labs(solutions_dir, labs_dir)]
    exercises = {s: [e.id for e in notebooks.exercises(notebooks.read(s))] for s in _solutions(solutions_dir)}
    known = {e for ids in exercises.values() for e in ids}
    for folder in sorted(p for p in WRONG_DIR.glob("*") if p.is_dir()):
        if folder.name not in known:
            findings.append(Finding(False, f"tests/labs/wrong/{folder.name}: no exercise has that id"))
    # spawn, not fork: each notebook starts servers and threads of its own.
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(jobs or 2 * (os.cpu_count() or 1), mp_context=context, initializer=_checking_speed) as pool:
        tasks = []
        for solution, ids in exercises.items():
            tasks.append(pool.submit(validate_lab, solution, labs_dir))
            for exercise in ids:
                tasks += [pool.submit(validate_wrong_answer, solution, exercise, w) for w in wrong_answers(exercise)]
        for task in tasks:
            findings.extend(task.result())
    return findings
