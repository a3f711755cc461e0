"""A stand-in for ``run_engine`` that returns records with the engine's real field names, and can die.

The class-level grader reads records as ``streamcourse.records.SubmissionRecord``;
these dicts have exactly its fields (id, path,
learner, lab, unreadable, cells, checks, flags, notes, attempts, ended,
seconds; each check nodeid, name, exercise, hidden, status, message,
seconds), so the tests of intake, scoring, reports, policy and shards run in
milliseconds without grading anything for real.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

# lab01's exercises with two checks each (the points come from solutions/: read_chunks 4, batched 6)
CHECKS = [
    ("lab01.read_chunks", "test_chunks_join_to_the_whole_file"),
    ("lab01.read_chunks", "test_an_empty_file_gives_no_chunks"),
    ("lab01.batched", "test_batched_is_lazy_on_an_endless_input"),
    ("lab01.batched", "test_no_rows_give_no_chunks"),
]


def record(
    sub: Any,
    passed: int = 4,
    message: str = "a chunk was too long",
    hidden: bool = False,
    lab: str | None = "lab01",
    cells: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The engine's record for ``sub``: the first ``passed`` checks pass, the rest fail with ``message``."""
    checks = [
        {
            "nodeid": f"test_lab01_generators.py::{name}",
            "name": name,
            "exercise": exercise,
            "hidden": hidden and n == len(CHECKS) - 1,
            "status": "passed" if n < passed else "failed",
            "message": "" if n < passed else message,
            "seconds": 0.25 * (n + 1),
        }
        for n, (exercise, name) in enumerate(CHECKS)
    ]
    return {
        "id": -1,
        "path": str(sub.path),
        "learner": sub.learner,
        "lab": lab,
        "unreadable": "",
        "cells": cells or [],
        "checks": checks,
        "flags": [],
        "notes": [],
        "attempts": 1,
        "ended": "",
        "seconds": 1.5,
    }


class FakeEngine:
    """``run_engine``'s signature; grades with ``outcome(sub)``; call n dies after ``die_after[n]`` records."""

    def __init__(self, outcome: Callable[[Any], dict[str, Any]] = record, die_after: tuple[int, ...] = ()) -> None:
        self.outcome, self.die_after = outcome, die_after
        self.calls: list[list[str]] = []

    def __call__(
        self,
        submissions: list[Any],
        labs: dict[str, list[str]],
        check_dirs: Any = (),
        jobs: Any = None,
        limits: Any = None,
        isolated: bool = True,
        on_done: Callable[[dict[str, Any]], None] | None = None,
    ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        self.calls.append([s.learner for s in submissions])
        limit = self.die_after[len(self.calls) - 1] if len(self.calls) <= len(self.die_after) else None
        records = []
        for n, sub in enumerate(submissions):
            if limit is not None and n >= limit:
                raise RuntimeError("the grading engine stopped (status -9) before grading the rest")
            rec = {**self.outcome(sub), "id": n}
            records.append(rec)
            if on_done:
                on_done(rec)
        return records, {"collect_errors": []}
