"""Make ``labs/`` (and the README's course map) from ``solutions/``, and prove the checks grade what they claim to.

``solutions/`` is the single source: ``build`` replaces every region between
``# BEGIN SOLUTION`` and ``# END SOLUTION`` with a stub. Inside a function the
stub is ``raise NotImplementedError`` (the lab still runs top to bottom; the
check says "not written yet"); at the top level of a cell it is ``...``, so the
name the exercise should define stays undefined and the check says which.

``streamcourse.validation`` proves the checks grade what they claim.

The README's Binder badge is generated too, from the one place that says where
the course lives: ``[tool.streamcourse] repository`` in ``pyproject.toml``.
"""

from __future__ import annotations

import copy
import re
import tomllib
from pathlib import Path

import nbformat

from streamcourse import notebooks
from streamcourse.checking import CHECKS_DIR, REPO, SOLUTIONS_DIR

__all__ = [
    "LABS_DIR",
    "WRONG_DIR",
    "stub_solutions",
    "build_lab",
    "build",
    "course_map",
    "repository",
    "binder_url",
    "binder_badge",
    "stale_labs",
    "solutions_of",
]

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
            raise BuildError(
                f"{where}: a solution region outside an exercise cell (add metadata.streamcourse.exercise)"
            )
        if exercise and not str(exercise).startswith(expected_lab + "."):
            raise BuildError(f"{where}: exercise id {exercise!r} must start with {expected_lab}.")
        if has_region:
            cell.source = stub_solutions(cell.source, where)
    return nb


def solutions_of(solutions_dir: Path) -> list[Path]:
    return sorted(solutions_dir.glob("lab[0-9][0-9]_*.ipynb"))


def _text(nb: nbformat.NotebookNode) -> str:
    return str(nbformat.writes(nb)) + "\n"


def _title(path: Path) -> str:
    """A notebook's title: the first markdown heading, without its number prefix."""
    for cell in notebooks.read(path).cells:
        for line in cell.source.splitlines():
            if cell.cell_type == "markdown" and line.startswith("# "):
                return re.sub(r"^(Lesson|Lab)?\s*\d+\s*[—:-]\s*", "", line[2:]).strip()
    return path.stem


def course_map(lessons_dir: Path = LESSONS_DIR, solutions_dir: Path = SOLUTIONS_DIR) -> str:
    """The README's table of lessons and labs, made from the notebooks themselves."""
    labs = {s.name[3:5]: s for s in solutions_of(solutions_dir)}
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
    return str(tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))["tool"]["streamcourse"]["repository"])


def binder_url(repo: str | None = None, lessons_dir: Path = LESSONS_DIR) -> str:
    """mybinder.org's launch link for the course's main branch, opening the first lesson in JupyterLab."""
    lessons = sorted(lessons_dir.glob("[0-9][0-9]_*.ipynb"))
    path = f"lab/tree/notebooks/{lessons[0].name}" if lessons else "lab"  # a course without lessons opens its folder
    return f"https://mybinder.org/v2/gh/{repo or repository()}/main?urlpath={path}"


def binder_badge(repo: str | None = None, lessons_dir: Path = LESSONS_DIR) -> str:
    return f"[![Binder](https://mybinder.org/badge_logo.svg)]({binder_url(repo, lessons_dir)})"


def _markers(name: str) -> tuple[str, str]:
    return f"<!-- {name}:start -->", f"<!-- {name}:end -->"


def _replace_between(text: str, name: str, body: str) -> str:
    start, end = _markers(name)
    head, rest = text.split(start, 1)
    return head + start + "\n" + body + "\n" + end + rest.split(end, 1)[1]


def _with_map(text: str, readme: Path, solutions_dir: Path) -> str:
    """``text`` of ``readme`` with its course map made from the lessons beside it and ``solutions_dir``."""
    start, end = _markers("course-map")
    if start not in text or end not in text:
        raise BuildError(f"{readme.name} needs the markers {start} and {end} around the course map")
    return _replace_between(text, "course-map", course_map(readme.parent / LESSONS_DIR.name, solutions_dir))


def _with_badge(text: str, readme: Path) -> str:
    """``text`` with its Binder badge (between ``binder-badge`` markers, where it has them) made afresh."""
    if not all(marker in text for marker in _markers("binder-badge")):
        return text
    return _replace_between(text, "binder-badge", binder_badge(lessons_dir=readme.parent / LESSONS_DIR.name))


def _readme_for(solutions_dir: Path) -> Path | None:
    """The README whose map lists these solutions: the one beside their folder, if there is one.

    Never the repository's own README for other folders: a build of temporary
    folders must not rewrite it.
    """
    readme = solutions_dir.resolve().parent / README.name
    return readme if readme.exists() else None


def build(solutions_dir: Path = SOLUTIONS_DIR, labs_dir: Path = LABS_DIR) -> list[Path]:
    """Write ``labs/`` from ``solutions/`` and the course map of the README beside ``solutions/``; returns the files written."""
    labs_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for solution in solutions_of(solutions_dir):
        target = labs_dir / solution.name
        target.write_text(_text(build_lab(solution)), encoding="utf-8")
        written.append(target)
    readme = _readme_for(solutions_dir)
    if readme is not None:
        text = readme.read_text(encoding="utf-8")
        readme.write_text(_with_badge(_with_map(text, readme, solutions_dir), readme), encoding="utf-8")
        written.append(readme)
    return written


def stale_labs(solutions_dir: Path = SOLUTIONS_DIR, labs_dir: Path = LABS_DIR) -> list[str]:
    """What is out of date in ``labs/`` (and the README beside ``solutions/``), one line each (empty when all are current)."""
    problems = []
    expected = {s.name: s for s in solutions_of(solutions_dir)}
    for name, solution in expected.items():
        target = labs_dir / name
        if not target.exists():
            problems.append(f"labs/{name} is missing")
        elif target.read_text(encoding="utf-8") != _text(build_lab(solution)):
            problems.append(f"labs/{name} is stale")
    for lab in sorted(labs_dir.glob("*.ipynb")):
        if lab.name not in expected:
            problems.append(f"labs/{lab.name} has no solution in solutions/")
    readme = _readme_for(solutions_dir)
    text = readme.read_text(encoding="utf-8") if readme is not None else ""
    if readme is not None and text != _with_map(text, readme, solutions_dir):
        problems.append(f"{readme.name}'s course map is stale")
    if readme is not None and text != _with_badge(text, readme):
        problems.append(f"{readme.name}'s Binder badge is stale (it is made from [tool.streamcourse] repository)")
    return problems
