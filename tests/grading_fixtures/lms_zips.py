"""Synthetic "download all submissions" zips, named the way each LMS names them (see streamcourse.lms).

Each maker takes ``{member name: notebook bytes}`` (or the pieces that make
the names) and writes a zip; the tests feed those to ``streamcourse.intake``.
"""

from __future__ import annotations

import datetime as dt
import zipfile
from pathlib import Path

import nbformat

REPO = Path(__file__).resolve().parents[2]
SOLUTION = REPO / "solutions" / "lab01_generators.ipynb"
BLANK = REPO / "labs" / "lab01_generators.ipynb"


def notebook(path: Path = SOLUTION, marker: str = "") -> bytes:
    """A lab01 notebook's bytes; ``marker`` adds a cell so two copies differ."""
    nb = nbformat.read(path, as_version=4)
    if marker:
        nb.cells.append(nbformat.v4.new_markdown_cell(marker))
    return nbformat.writes(nb).encode()


def write_zip(path: Path, members: dict[str, bytes], when: dt.datetime = dt.datetime(2025, 3, 1, 12, 0)) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(zipfile.ZipInfo(name, when.timetuple()[:6]), data)
    return path


def canvas(path: Path, learners: list[tuple[str, str, bool, bytes]]) -> Path:
    """(sortable name, user id, late, notebook) -> ``smithbob[_LATE]_1234_<attachment>_lab01_generators.ipynb``."""
    members = {}
    for n, (name, user, late, data) in enumerate(learners):
        parts = [name, "LATE" if late else "", user, str(90000 + n), "lab01_generators.ipynb"]
        members["_".join(p for p in parts if p)] = data
    return write_zip(path, members)


def moodle(path: Path, learners: list[tuple[str, str, bytes]], folders: bool = True) -> Path:
    """(full name, participant id, notebook) -> ``Bob Smith_1234567_assignsubmission_file_/lab01_generators.ipynb``."""
    sep = "/" if folders else ""
    return write_zip(
        path, {f"{name}_{pid}_assignsubmission_file_{sep}lab01_generators.ipynb": data for name, pid, data in learners}
    )


def gradescope(path: Path, learners: list[tuple[str, str, str, bytes]]) -> Path:
    """(name, sid, created_at as Ruby writes it, notebook) -> ``assignment_1_export/submission_<n>/...`` + metadata."""
    members, metadata = {}, []
    for n, (name, sid, created, data) in enumerate(learners, start=1001):
        members[f"assignment_1_export/submission_{n}/lab01_generators.ipynb"] = data
        metadata.append(
            f"submission_{n}:\n  :submitters:\n  - :name: {name}\n    :sid: '{sid}'\n"
            f"    :email: {sid}@example.edu\n  :created_at: {created}\n  :score: 0.0\n"
        )
    members["assignment_1_export/submission_metadata.yml"] = "".join(metadata).encode()
    return write_zip(path, members)
