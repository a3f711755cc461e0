"""Every notebook is committed clean and runs top to bottom in a fresh kernel.

Lessons and solutions must run without a single error; a blank lab runs too,
and the only errors allowed there are the stubs' ``NotImplementedError``.
Pacing is sped up (``STREAMCOURSE_SPEED``) so the whole course runs in minutes.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from streamcourse import notebooks, pacing

REPO = Path(__file__).resolve().parent.parent
LESSONS = sorted((REPO / "notebooks").glob("*.ipynb"))
SOLUTIONS = sorted((REPO / "solutions").glob("*.ipynb"))
LABS = sorted((REPO / "labs").glob("*.ipynb"))
ALL = LESSONS + SOLUTIONS + LABS


def _id(path: Path) -> str:
    return f"{path.parent.name}/{path.name}"


def execute(path: Path) -> nbformat.NotebookNode:
    nb = nbformat.read(path, as_version=4)
    env = {pacing.ENV: pacing.CHECKING_SPEED, "MPLBACKEND": "Agg"}
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    os.environ.pop("OPENAI_API_KEY", None)
    try:
        NotebookClient(
            nb,
            timeout=180,
            kernel_name="python3",
            allow_errors=True,
            resources={"metadata": {"path": str(path.parent)}},
        ).execute()
    finally:
        for key, value in old.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    return nb


def errors(nb: nbformat.NotebookNode) -> list[tuple[int, str, str]]:
    return [
        (i, out.ename, out.evalue)
        for i, cell in enumerate(nb.cells)
        if cell.cell_type == "code"
        for out in cell.outputs
        if out.output_type == "error"
    ]


@pytest.mark.parametrize("path", ALL, ids=_id)
def test_committed_without_outputs(path: Path) -> None:
    nb = json.loads(path.read_text(encoding="utf-8"))
    dirty = [i for i, c in enumerate(nb["cells"]) if c.get("outputs") or c.get("execution_count")]
    assert not dirty, f"{_id(path)} has outputs or execution counts in cells {dirty}: clear them before committing"


def check_reports(nb: nbformat.NotebookNode) -> list[str]:
    """What the check() cells of an executed lab showed."""
    return [
        out.get("data", {}).get("text/plain", "")
        for cell in nb.cells
        if cell.cell_type == "code" and notebooks.is_check_cell(cell.source)
        for out in cell.outputs
    ]


@pytest.mark.parametrize("path", LESSONS, ids=_id)
def test_lesson_runs_top_to_bottom_without_errors(path: Path) -> None:
    nb = execute(path)
    assert errors(nb) == [], f"{_id(path)} raised in a fresh kernel: {errors(nb)}"


@pytest.mark.parametrize("path", SOLUTIONS, ids=_id)
def test_solution_runs_and_passes_every_check_in_the_kernel(path: Path) -> None:
    nb = execute(path)
    assert errors(nb) == [], f"{_id(path)} raised in a fresh kernel: {errors(nb)}"
    shown = check_reports(nb)
    assert shown and all(re.search(r": (\d+)/\1 checks passed", text) for text in shown), (
        f"{_id(path)}: every check() cell should show all its checks passing: {shown}"
    )


@pytest.mark.parametrize("path", LABS, ids=_id)
def test_blank_lab_runs_and_only_its_stubs_raise(path: Path) -> None:
    nb = execute(path)
    unexpected = [e for e in errors(nb) if e[1] != "NotImplementedError"]
    assert unexpected == [], (
        f"{_id(path)}: only unwritten exercises may raise, and only NotImplementedError: {unexpected}"
    )
    shown = check_reports(nb)
    assert shown and all(re.search(r": 0/[1-9]\d* checks passed", text) for text in shown), (
        f"{_id(path)}: every check() cell should show all of its checks failing on the blank lab: {shown}"
    )


@pytest.mark.parametrize("path", LESSONS, ids=_id)
def test_lesson_opens_with_objectives_and_closes_with_key_points(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    first, last = nb.cells[0], nb.cells[-1]
    assert first.cell_type == "markdown" and "You will learn" in first.source, "open with *You will learn*"
    assert last.cell_type == "markdown" and "Key points" in last.source, "close with *Key points* and the links"


_LINK = re.compile(r"\]\(([^)#\s]+\.ipynb)\)")


@pytest.mark.parametrize("path", ALL, ids=_id)
def test_every_notebook_link_resolves(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    links = {m for c in nb.cells if c.cell_type == "markdown" for m in _LINK.findall(c.source)}
    broken = sorted(link for link in links if not (path.parent / link).exists())
    assert broken == [], f"{_id(path)} links to notebooks that do not exist: {broken}"


@pytest.mark.parametrize("path", LESSONS, ids=_id)
def test_lesson_ends_with_links_to_its_lab_and_the_next_lesson(path: Path) -> None:
    last = nbformat.read(path, as_version=4).cells[-1].source
    number = int(path.name[:2])
    lab = next((REPO / "labs").glob(f"lab{number:02d}_*.ipynb"), None)
    following = next((REPO / "notebooks").glob(f"{number + 1:02d}_*.ipynb"), None)
    if lab is not None:
        assert f"../labs/{lab.name}" in last, f"{_id(path)}: link its lab ../labs/{lab.name} in the last cell"
    if following is not None:
        assert f"({following.name})" in last, f"{_id(path)}: link the next lesson {following.name} in the last cell"
