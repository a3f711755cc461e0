"""``release OUT.zip``: what learners receive works on its own, and holds nothing of the instructor's."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import nbformat
import pytest

from streamcourse import building, release
from streamcourse.checking import REPO


@pytest.fixture(scope="module")
def released(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    out = tmp_path_factory.mktemp("release") / "release.zip"
    names, _ = release.build(out)
    return out, names


def test_the_release_holds_lessons_labs_package_and_visible_checks_only(released: tuple[Path, list[str]]) -> None:
    out, names = released
    with zipfile.ZipFile(out) as archive:
        assert sorted(archive.namelist()) == names
    for needed in (
        "README.md",
        "pyproject.toml",
        "notebooks/01_generators.ipynb",
        "labs/lab01_generators.ipynb",
        "streamcourse/checking.py",
        "tests/labs/test_lab01_generators.py",
        "tests/labs/checks.ini",
    ):
        assert needed in names
    assert not [n for n in names if n.startswith(("solutions/", "tests/labs/wrong/", "tests/test_", "bench/", ".ci/"))]


def test_the_release_is_reproducible(released: tuple[Path, list[str]], tmp_path: Path) -> None:
    again = tmp_path / "again.zip"
    release.build(again)
    assert again.read_bytes() == released[0].read_bytes()


def _exercise_code(lab: str) -> str:
    nb = nbformat.read(REPO / "solutions" / f"{lab}.ipynb", as_version=4)
    return "\n\n".join(
        c.source for c in nb.cells if c.cell_type == "code" and not c.source.lstrip().startswith(("check(", "%"))
    )


def test_check_works_in_an_unpacked_release(released: tuple[Path, list[str]], tmp_path: Path) -> None:
    """A learner's Python, in a fresh folder holding only the release, checks a solved and an unsolved exercise."""
    folder = tmp_path / "course"
    with zipfile.ZipFile(released[0]) as archive:
        archive.extractall(folder)
    (folder / "answer.py").write_text(_exercise_code("lab01_generators"))
    script = (
        "import streamcourse, runpy\n"
        "print('package from', streamcourse.__file__)\n"
        "globals().update(runpy.run_path('answer.py'))\n"
        "from streamcourse import check\n"
        "check('lab01.read_chunks')\n"
        "del batched\n"
        "check('lab01.batched')\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
    env.update(PYTHONPATH=str(folder), STREAMCOURSE_SPEED="20")
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=folder, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"package from {folder / 'streamcourse' / '__init__.py'}" in done.stdout
    assert "lab01.read_chunks: 5/5 checks passed — well done!" in done.stdout
    assert "lab01.batched: 0/6 checks passed" in done.stdout and "`batched` is not defined" in done.stdout


def _small_course(root: Path) -> Path:
    for name in (
        "README.md",
        "pyproject.toml",
        "labs/lab01_generators.ipynb",
        "solutions/lab01_generators.ipynb",
        "tests/labs/test_lab01_generators.py",
        "tests/labs/checks.ini",
        "streamcourse/checking.py",
        "notebooks/01_generators.ipynb",
    ):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / name, root / name)
    building.build(root / "solutions", root / "labs")  # its README's map lists this one lesson and lab
    return root


def test_a_hidden_check_inside_the_release_is_refused(tmp_path: Path) -> None:
    course = _small_course(tmp_path / "course")
    hidden = tmp_path / "hidden"
    hidden.mkdir()
    shutil.copy(REPO / "tests/labs/test_lab01_generators.py", hidden / "test_lab01_hidden.py")
    with pytest.raises(release.ReleaseError, match="tests/labs/test_lab01_generators.py is the hidden check"):
        release.build(tmp_path / "r.zip", course, [hidden])


def test_stale_labs_are_refused(tmp_path: Path) -> None:
    course = _small_course(tmp_path / "course")
    (course / "labs" / "lab01_generators.ipynb").write_text("{}")
    with pytest.raises(release.ReleaseError, match="labs/ are stale.*run `python -m streamcourse build` first"):
        release.build(tmp_path / "r.zip", course)


def test_files_git_does_not_track_stay_out(tmp_path: Path) -> None:
    course = _small_course(tmp_path / "course")
    subprocess.run(["git", "init", "-q", str(course)], check=True)
    subprocess.run(
        ["git", "-C", str(course), "add", "README.md", "labs", "streamcourse", "tests/labs/checks.ini"], check=True
    )
    names, untracked = release.members(course)
    assert "tests/labs/test_lab01_generators.py" in untracked and "tests/labs/test_lab01_generators.py" not in names
    assert "solutions/lab01_generators.ipynb" not in names + untracked
