"""Run a notebook's code cells as Jupyter would: the one cell loop of the course.

Both places that run a learner's notebook use it: ``streamcourse.checking``
(``check()`` and plain pytest, in this process) and ``streamcourse.runner`` (the
grader's sandbox). A cell that raises is recorded and skipped, as when a learner
moves on, so later exercises still get their chance; ``check(...)`` cells are not
run (the checks are run by whoever runs the notebook).
"""

from __future__ import annotations

import ast
import inspect
import linecache
from collections.abc import Callable, Coroutine, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

__all__ = ["CellOutcome", "strip_magics", "run_cell", "run_cells", "no_check"]

#: Runs the coroutine of a cell with top-level ``await`` to its end.
RunCoroutine = Callable[[Coroutine[Any, Any, Any]], Any]


@dataclass(frozen=True)
class CellOutcome:
    """How one cell went: ``error`` is empty when it ran to its end."""

    index: int
    error: str = ""


def strip_magics(source: str) -> str:
    """Comment out IPython-only lines (``%magic``, ``!shell``): they mean nothing to plain Python."""
    return "\n".join("# " + line if line.lstrip().startswith(("%", "!")) else line for line in source.splitlines())


def run_cell(source: str, values: dict[str, Any], filename: str, run_coroutine: RunCoroutine) -> None:
    """Execute one cell: top-level ``await`` allowed, source kept so tracebacks show the learner's lines."""
    source = strip_magics(source)
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    code = compile(source, filename, "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT, dont_inherit=True)
    result = eval(code, values)  # noqa: S307 - executing the learner's notebook is the point
    if inspect.CO_COROUTINE & code.co_flags:
        run_coroutine(result)


def run_cells(
    cells: Iterable[tuple[int, str]],
    values: dict[str, Any],
    run_coroutine: RunCoroutine,
    skip: Iterable[int] = (),
    before: Callable[[int], None] = lambda index: None,
    after: Callable[[int], None] = lambda index: None,
    catch: tuple[type[BaseException], ...] = (),
) -> Iterator[CellOutcome]:
    """Run each cell in turn, yielding its outcome; cells in ``skip`` are reported, not run.

    ``before(index)`` and ``after(index)`` bracket each cell (the runner reports the
    cell and arms a time limit there); ``catch`` names exceptions beyond
    ``Exception`` that end only the cell they interrupt (the runner's time limit).
    """
    skipped = set(skip)
    for index, source in cells:
        if index in skipped:
            yield CellOutcome(index, "skipped: it stopped or hung the notebook before")
            continue
        before(index)
        try:
            try:
                run_cell(source, values, f"<cell {index}>", run_coroutine)
            finally:
                after(index)
        except BaseException as exc:
            if not isinstance(exc, (Exception, *catch)):
                raise
            yield CellOutcome(index, describe(exc))
        else:
            yield CellOutcome(index)


def describe(exc: BaseException) -> str:
    """``Type: message`` of an exception raised by learner code, safe against a hostile ``__str__``."""
    try:
        text = str(exc)
    except Exception:  # noqa: BLE001 - the learner's __str__ raised: the type is enough
        text = ""
    return (f"{type(exc).__name__}: {text}" if text else type(exc).__name__)[:1200]


def no_check(exercise: str) -> None:
    """Stands in for check() while a notebook is run for checking."""
