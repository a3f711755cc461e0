"""Reading notebooks: the grader's fast reader agrees with nbformat's, and odd files get clear messages."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from streamcourse import notebooks

sys.path.insert(0, str(Path(__file__).parent / "grading_fixtures"))
import hostile

REPO = Path(__file__).resolve().parent.parent
ALL = sorted([*REPO.glob("solutions/*.ipynb"), *REPO.glob("labs/*.ipynb"), *REPO.glob("notebooks/*.ipynb")])


@pytest.mark.parametrize("path", ALL, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_the_fast_reader_gives_what_nbformat_gives(path: Path) -> None:
    nb = notebooks.read(path)
    assert notebooks.read_code(path) == (notebooks.lab_of(nb, path), notebooks.code_cells(nb))


def test_an_old_notebook_is_converted_and_read(tmp_path: Path) -> None:
    hostile.nbformat_v3(tmp_path)
    lab, code = notebooks.read_code(tmp_path / hostile.NAME)
    assert lab == "lab01" and any("def batched" in source for _, source in code)


def test_sources_split_into_lines_are_joined(tmp_path: Path) -> None:
    raw = {
        "nbformat": 4,
        "nbformat_minor": 5,
        "metadata": {"streamcourse": {"lab": "lab07"}},
        "cells": [{"cell_type": "code", "source": ["x = 1\n", "y = 2\n"], "metadata": {}, "outputs": []}],
    }
    path = tmp_path / "a.ipynb"
    path.write_text(json.dumps(raw))
    assert notebooks.read_code(path) == ("lab07", [(0, "x = 1\ny = 2\n")])


def test_a_cell_whose_source_is_not_text_is_a_clear_error(tmp_path: Path) -> None:
    raw = json.loads(hostile.BLANK.read_text())
    raw["cells"][2]["source"] = 12345
    path = tmp_path / "lab01_generators.ipynb"
    path.write_text(json.dumps(raw))
    with pytest.raises(notebooks.NotebookError, match="cell 2's source is not text"):
        notebooks.read_code(path)
