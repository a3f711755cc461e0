"""labs/ are generated from solutions/, and the checks grade what they claim to."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from streamcourse import building, notebooks, validation

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


def a_course(tmp_path: Path, readme: str | None) -> tuple[Path, Path]:
    """A course of one lab in temporary folders, with (or without) a README of its own."""
    solutions, labs, lessons = tmp_path / "solutions", tmp_path / "labs", tmp_path / "notebooks"
    solutions.mkdir()
    lessons.mkdir()
    shutil.copy(building.SOLUTIONS_DIR / "lab01_generators.ipynb", solutions)
    shutil.copy(building.LESSONS_DIR / "01_generators.ipynb", lessons)
    if readme is not None:
        (tmp_path / "README.md").write_text(readme)
    return solutions, labs


def test_building_other_folders_leaves_the_repository_readme_untouched(tmp_path: Path) -> None:
    before = building.README.read_bytes(), building.README.stat().st_mtime_ns
    solutions, labs = a_course(tmp_path, readme=None)
    written = building.build(solutions, labs)
    assert written == [labs / "lab01_generators.ipynb"]
    assert building.stale_labs(solutions, labs) == []
    assert (building.README.read_bytes(), building.README.stat().st_mtime_ns) == before


def test_building_other_folders_maps_only_their_own_readme(tmp_path: Path) -> None:
    before = building.README.read_bytes()
    solutions, labs = a_course(tmp_path, readme="# A course\n<!-- course-map:start -->\n<!-- course-map:end -->\n")
    assert building.stale_labs(solutions, labs)[-1] == "README.md's course map is stale"
    building.build(solutions, labs)
    text = (tmp_path / "README.md").read_text()
    assert (
        "| 01 | [Generators](notebooks/01_generators.ipynb) | [lab01_generators](labs/lab01_generators.ipynb)" in text
    )
    assert "| 02 |" not in text, "only the lessons beside this README belong in its map"
    assert building.stale_labs(solutions, labs) == []
    assert building.README.read_bytes() == before


def test_the_binder_badge_follows_the_repository_it_is_given() -> None:
    badge = building.binder_badge("someone/a-fork")
    assert "(https://mybinder.org/v2/gh/someone/a-fork/main?urlpath=lab/tree/notebooks/00_start_here.ipynb)" in badge


def test_the_committed_labs_and_course_map_are_current() -> None:
    result = subprocess.run([sys.executable, "-m", "streamcourse", "build", "--check"], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.timeout(600)
def test_validate_every_check_fails_blank_passes_solved_and_rejects_each_wrong_answer() -> None:
    """The command end to end on one lab: .ci/run validates the whole course after make test, on one busy core.

    (Validating every lab here too would cost make test seven more minutes and prove nothing .ci/run does not;
    run `make validate` after changing a lab or its checks.)
    """
    result = subprocess.run(
        [sys.executable, "-m", "streamcourse", "validate", "lab01"], capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "all good" in result.stdout


def test_every_exercise_has_at_least_one_known_wrong_answer() -> None:
    exercises = [
        e.id for s in sorted(building.SOLUTIONS_DIR.glob("lab*.ipynb")) for e in notebooks.exercises(notebooks.read(s))
    ]
    missing = [e for e in exercises if not validation.wrong_answers(e)]
    assert missing == [], f"add a common wrong answer under tests/labs/wrong/<id>/ for: {missing}"


def test_a_run_that_broke_off_is_reported_as_broken_not_as_an_unrejected_answer(
    tmp_path: Path, break_off_check_runs
) -> None:
    break_off_check_runs(validation)
    harmless = tmp_path / "changes_nothing.py"  # the checks it reaches all pass, as for an answer they miss
    harmless.write_text("# rejected by: test_memory_stays_flat_as_the_input_grows\nunused = 1\n")
    verdict = validation.validate_wrong_answer(
        building.SOLUTIONS_DIR / "lab01_generators.ipynb", "lab01.batched", harmless
    )
    assert [f.ok for f in verdict.findings][:1] == [False]
    assert "1 ran" in verdict.findings[0].text and not any("NOT rejected" in f.text for f in verdict.findings[:1])
