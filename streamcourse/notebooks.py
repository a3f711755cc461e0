"""Read course notebooks: the one place that knows the notebook format.

A lab notebook names its lab in ``metadata.streamcourse.lab``; each exercise
cell names its exercise and points in ``cell.metadata.streamcourse``. A
submission may have lost either (learners copy cells, old tools strip
metadata), so every reader here falls back to something sensible and says so.
"""

from __future__ import annotations

import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    import nbformat

# nbformat's schema checker imports rfc3987_syntax, which builds a grammar when imported
# (over a second of CPU) for a URI format no notebook field uses; every process that reads
# a notebook would pay it. Refusing the import skips only that one format check.
sys.modules.setdefault("rfc3987_syntax", None)  # type: ignore[arg-type]

__all__ = [
    "NotebookError",
    "Exercise",
    "read",
    "read_code",
    "lab_of",
    "lab_in_name",
    "exercises",
    "code_cells",
    "is_check_cell",
]

_LAB_IN_NAME = re.compile(r"(lab\d\d)")
_CHECK_CALL = re.compile(r"^\s*check\(\s*['\"][\w.]+['\"]\s*\)\s*;?\s*$")


class NotebookError(ValueError):
    """A notebook that cannot be read; the message says what to do about it."""


@dataclass(frozen=True)
class Exercise:
    id: str
    points: float
    cell_index: int
    source: str


def _json(path: Path) -> tuple[str, dict[str, Any]]:
    """The notebook's text and JSON, or a NotebookError that says what to do."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise NotebookError(f"{path} is not UTF-8 text; save it again from Jupyter.") from None
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise NotebookError(
            f"{path} is not valid notebook JSON (line {exc.lineno}: {exc.msg}); "
            "it may have been edited outside Jupyter or truncated — save it again from Jupyter."
        ) from None
    if not isinstance(raw, dict) or "cells" not in raw and "worksheets" not in raw:
        raise NotebookError(f"{path} is JSON but not a notebook (no cells).")
    return text, raw


def read(path: str | Path) -> nbformat.NotebookNode:
    """Read a notebook of any nbformat version (converted to 4), with a message a person can act on."""
    import nbformat  # its schema validator takes a while to import: only readers that need it pay

    path = Path(path)
    text, _ = _json(path)
    try:
        nb = nbformat.reads(text, as_version=4)
    except Exception as exc:  # noqa: BLE001 - nbformat raises several kinds for old or odd files; re-raised
        raise NotebookError(f"{path} could not be read as a notebook: {exc}") from None
    for index, cell in enumerate(nb.cells):
        if not isinstance(cell.get("source"), str):
            raise NotebookError(
                f"{path}: cell {index}'s source is not text ({type(cell.get('source')).__name__}); save it again from Jupyter."
            )
    return cast("nbformat.NotebookNode", nb)


def read_code(path: str | Path) -> tuple[str | None, list[tuple[int, str]]]:
    """The lab and the ``(index, source)`` of every code cell: what a grader's runner needs, read fast.

    Plain nbformat 4 JSON is read as JSON; anything else goes through :func:`read`
    (older versions are converted, odd files get its messages).
    """
    path = Path(path)
    _, raw = _json(path)
    cells = raw.get("cells")
    if raw.get("nbformat") == 4 and isinstance(cells, list) and all(map(_plain_cell, cells)):
        meta = raw.get("metadata")
        info = meta.get("streamcourse") if isinstance(meta, dict) else None
        lab = info.get("lab") if isinstance(info, dict) else None
        code = [(i, _text(c["source"])) for i, c in enumerate(cells) if c.get("cell_type") == "code"]
        return (lab if isinstance(lab, str) and lab else lab_in_name(path)), code
    nb = read(path)
    return lab_of(nb, path), code_cells(nb)


def _plain_cell(cell: Any) -> bool:
    """A cell as nbformat 4 writes it: a dict whose source is text or lines of text."""
    if not isinstance(cell, dict):
        return False
    source = cell.get("source")
    return isinstance(source, str) or isinstance(source, list) and all(isinstance(line, str) for line in source)


def _text(source: str | list[str]) -> str:
    return source if isinstance(source, str) else "".join(source)


def lab_of(nb: nbformat.NotebookNode, path: str | Path | None = None) -> str | None:
    """The lab id from the notebook's metadata, else from its file name (``lab03_sse.ipynb``)."""
    lab = nb.metadata.get("streamcourse", {}).get("lab")
    if isinstance(lab, str) and lab:
        return lab
    return lab_in_name(path) if path is not None else None


def lab_in_name(path: str | Path) -> str | None:
    """The lab id in a file name (``lab03_sse.ipynb`` → ``lab03``), if it has one."""
    match = _LAB_IN_NAME.search(Path(path).name)
    return match.group(1) if match else None


def cell_info(cell: Any) -> dict[str, Any]:
    """The ``streamcourse`` part of a cell's metadata (empty when absent)."""
    info = cell.get("metadata", {}).get("streamcourse", {})
    return info if isinstance(info, dict) else {}


def exercises(nb: nbformat.NotebookNode) -> list[Exercise]:
    """The exercise cells of a notebook, in order."""
    found = []
    for index, cell in enumerate(nb.cells):
        info = cell_info(cell)
        if cell.cell_type == "code" and "exercise" in info:
            found.append(Exercise(str(info["exercise"]), float(info.get("points", 1)), index, cell.source))
    return found


def is_check_cell(source: str) -> bool:
    """True for a cell that only calls ``check("...")``: it runs checks, it defines nothing."""
    lines = [line for line in source.splitlines() if line.strip() and not line.strip().startswith("#")]
    return bool(lines) and all(_CHECK_CALL.match(line) for line in lines)


def code_cells(nb: nbformat.NotebookNode) -> list[tuple[int, str]]:
    """``(index, source)`` of every code cell, in order."""
    return [(i, c.source) for i, c in enumerate(nb.cells) if c.cell_type == "code"]
