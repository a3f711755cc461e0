"""labs/ are generated from solutions/, and the checks grade what they claim to."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from streamcourse import building, notebooks

REPO = building.REPO


def test_a_solution_inside_a_function_becomes_raise_not_implemented() -> None:
    source = "def f(x):\n    # BEGIN SOLUTION\n    return x * 2\n    # END SOLUTION\n"
    assert building.stub_solutions(source) == "def f(x):\n    # YOUR CODE HERE\n    raise NotImplementedError"


def test_a_top_level_solution_becomes_an_ellipsis_so_the_name_stays_undefined() -> None:
    source = "# BEGIN SOLUTION\napp = make()\n# END SOLUTION\nprint('after')"
    assert building.stub_solutions(source) == "# YOUR CODE HERE\n...\nprint('after')"


@pytest.mark.parametrize(
    "source, problem",
    [
        ("# BEGIN SOLUTION\nx = 1\n", "never closed"),
        ("x = 1\n# END SOLUTION\n", "without '# BEGIN SOLUTION'"),
        ("# BEGIN SOLUTION\n# BEGIN SOLUTION\n# END SOLUTION\n", "inside another"),
    ],
)
def test_broken_solution_markers_are_refused_with_the_cell_named(source: str, problem: str) -> None:
    with pytest.raises(building.BuildError, match=problem):
        building.stub_solutions(source, "lab09_x.ipynb cell 3")


def test_labs_keep_the_exercise_metadata_and_lose_every_answer() -> None:
    for solution in sorted(building.SOLUTIONS_DIR.glob("lab*.ipynb")):
        lab = notebooks.read(building.LABS_DIR / solution.name)
        assert lab.metadata["streamcourse"] == notebooks.read(solution).metadata["streamcourse"]
        assert [(e.id, e.points) for e in notebooks.exercises(lab)] == [
            (e.id, e.points) for e in notebooks.exercises(notebooks.read(solution))
        ]
        assert not any("BEGIN SOLUTION" in c.source for c in lab.cells)


def test_build_check_names_every_stale_lab(tmp_path: Path) -> None:
    solutions, labs = tmp_path / "solutions", tmp_path / "labs"
    shutil.copytree(building.SOLUTIONS_DIR, solutions)
    shutil.copytree(building.LABS_DIR, labs)
    assert building.stale_labs(solutions, labs) == []
    edited = labs / "lab01_generators.ipynb"
    edited.write_text(edited.read_text().replace("lazily", "eagerly"))
    (labs / "lab77_orphan.ipynb").write_text("{}")
    assert building.stale_labs(solutions, labs) == [
        "labs/lab01_generators.ipynb is stale",
        "labs/lab77_orphan.ipynb has no solution in solutions/",
    ]


def test_the_binder_badge_follows_the_repository_it_is_given() -> None:
    badge = building.binder_badge("someone/a-fork")
    assert "(https://mybinder.org/v2/gh/someone/a-fork/main?urlpath=lab/tree/notebooks/00_start_here.ipynb)" in badge


def test_the_committed_labs_and_course_map_are_current() -> None:
    result = subprocess.run([sys.executable, "-m", "streamcourse", "build", "--check"], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_validate_every_check_fails_blank_passes_solved_and_rejects_each_wrong_answer() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "streamcourse", "validate"], capture_output=True, text=True, timeout=900
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "all good" in result.stdout


def test_every_exercise_has_at_least_one_known_wrong_answer() -> None:
    exercises = [e.id for s in sorted(building.SOLUTIONS_DIR.glob("lab*.ipynb")) for e in notebooks.exercises(notebooks.read(s))]
    missing = [e for e in exercises if not building.wrong_answers(e)]
    assert missing == [], f"add a common wrong answer under tests/labs/wrong/<id>/ for: {missing}"


def test_a_run_that_broke_off_is_reported_as_broken_not_as_an_unrejected_answer(
    tmp_path: Path, break_off_check_runs
) -> None:
    break_off_check_runs(building)
    harmless = tmp_path / "changes_nothing.py"  # the checks it reaches all pass, as for an answer they miss
    harmless.write_text("unused = 1\n")
    [finding] = building.validate_wrong_answer(building.SOLUTIONS_DIR / "lab01_generators.ipynb", "lab01.batched", harmless)
    assert not finding.ok and "only 1 of " in finding.text and "NOT rejected" not in finding.text
