"""A lab's check files, and how the grader runs pytest on them: which files, which plugins, bounded output.

The engine collects each lab's checks before it forks (:func:`collect`), so a
checker starts with the check files imported; a checker runs the same files
(:func:`check_paths`) with the same options.
"""

from __future__ import annotations

import io
from pathlib import Path

from streamcourse.records import CheckRecord
from streamcourse.results import Collector, exercise_of

__all__ = ["PYTEST_EXTRA", "Capped", "check_paths", "collect"]


PYTEST_EXTRA = (
    "-p",
    "no:unraisableexception",  # its gc passes cost more than a lab's checks
    "-p",
    "no:threadexception",
    "-p",
    "no:junitxml",
    "-p",
    "no:pastebin",
    "-p",
    "no:doctest",
    "--tb=native",  # a failure's message is all the grader keeps: pytest's long form costs 15 ms a failing check
)


def check_paths(lab: str | None, hidden: list[str]) -> list[Path]:
    """The check files of a lab: its own file(s) in tests/labs plus the hidden folders."""
    from streamcourse.checking import CHECKS_DIR

    own = sorted(CHECKS_DIR.glob(f"test_{lab}_*.py")) if lab else []
    return [*(own or [CHECKS_DIR]), *map(Path, hidden)]


class Capped(io.TextIOBase):
    """Keeps the first ``limit`` characters written, drops the rest: pytest's own output, bounded."""

    def __init__(self, limit: int = 64 * 1024) -> None:
        self.limit, self.size = limit, 0

    def write(self, text: str) -> int:
        self.size += len(text)
        return len(text)


def collect(
    labs: list[str], exercises: dict[str, list[str]], hidden: list[str]
) -> tuple[list[str], dict[str, list[CheckRecord]]]:
    """Import the labs' check files (in the engine, before forking) and learn which checks each lab has."""
    from streamcourse.checking import run_checks

    known = [lab for lab in labs if lab in exercises]
    if not known:
        return [], {}
    collector = Collector(hidden)
    paths: list[Path] = []
    for lab in known:
        paths += [p for p in check_paths(lab, hidden) if p not in paths]
    run = run_checks(
        None,
        [e for lab in known for e in exercises[lab]],
        paths,
        extra_args=["--collect-only", *PYTEST_EXTRA],
        collector=collector,
        output=Capped(),
    )
    expected: dict[str, list[CheckRecord]] = {lab: [] for lab in known}
    for item in collector.collected:
        lab = (exercise_of(item) or "").split(".")[0]
        if lab in expected:
            expected[lab].append(
                CheckRecord(item.nodeid, item.name, exercise_of(item) or "", collector.is_hidden(item), "")
            )
    return list(run.collect_errors), expected
