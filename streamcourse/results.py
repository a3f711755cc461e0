"""What the grading engine reports for one submission, as typed records.

This is the only module that reads the engine's records. The engine gives one
record per submission, today a dict, maybe a dataclass tomorrow, always with
these fields: id, path, learner, lab, unreadable, cells, checks, flags, notes,
attempts, ended, seconds; each check with nodeid, name, exercise, hidden,
status, message, seconds. ``read`` accepts either shape, so nothing else in
the grader depends on which.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from streamcourse.sandbox import (  # the result vocabulary grades.json reports
    CHECK_BROKE,
    CRASHED,
    ERROR,
    FAILED,
    HIDDEN_GENERIC,
    NOT_RUN,
    PASSED,
    TIMED_OUT,
)

__all__ = [
    "PASSED", "FAILED", "TIMED_OUT", "CRASHED", "ERROR", "NOT_RUN", "CHECK_BROKE", "HIDDEN_GENERIC", "NOT_GRADED",
    "CheckResult", "CellResult", "EngineRecord", "read", "not_graded",
]

NOT_GRADED = "not graded"


class _Readable:
    """``record["status"]`` reads like ``record.status``: older callers index these records like dicts."""

    def __getitem__(self, key: str) -> Any:
        try:
            return getattr(self, key)
        except AttributeError:
            raise KeyError(key) from None


@dataclass(frozen=True)
class CheckResult(_Readable):
    nodeid: str
    name: str
    exercise: str
    status: str
    message: str = ""
    seconds: float = 0.0
    hidden: bool = False


@dataclass(frozen=True)
class CellResult(_Readable):
    index: int
    status: str
    error: str = ""


@dataclass(frozen=True)
class EngineRecord:
    path: str
    learner: str
    lab: str | None = None
    unreadable: str = ""
    cells: list[CellResult] = field(default_factory=list)
    checks: list[CheckResult] = field(default_factory=list)
    flags: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    attempts: int = 1
    ended: str = ""
    seconds: float = 0.0
    id: int = -1


def _field(record: Any, name: str, default: Any = None) -> Any:
    value = record.get(name, default) if isinstance(record, dict) else getattr(record, name, default)
    return default if value is None else value


def _check(raw: Any) -> CheckResult:
    return CheckResult(
        str(_field(raw, "nodeid", "")), str(_field(raw, "name", "")), str(_field(raw, "exercise", "")),
        str(_field(raw, "status", NOT_RUN)), str(_field(raw, "message", "")), float(_field(raw, "seconds", 0.0)),
        bool(_field(raw, "hidden", False)),
    )


def _cell(raw: Any) -> CellResult:
    return CellResult(int(_field(raw, "index", -1)), str(_field(raw, "status", "")), str(_field(raw, "error", "")))


def read(record: Any) -> EngineRecord:
    """An engine record (dict or dataclass) as an ``EngineRecord``; missing fields get neutral defaults."""
    if isinstance(record, EngineRecord):
        return record
    lab = _field(record, "lab")
    return EngineRecord(
        path=str(_field(record, "path", "")),
        learner=str(_field(record, "learner", "")),
        lab=str(lab) if lab else None,
        unreadable=str(_field(record, "unreadable", "")),
        cells=[_cell(c) for c in _field(record, "cells", [])],
        checks=[_check(c) for c in _field(record, "checks", [])],
        flags=[str(f) for f in _field(record, "flags", [])],
        notes=[str(n) for n in _field(record, "notes", [])],
        attempts=int(_field(record, "attempts", 1)),
        ended=str(_field(record, "ended", "")),
        seconds=float(_field(record, "seconds", 0.0)),
        id=int(_field(record, "id", -1)),
    )


def not_graded(path: str, learner: str, lab: str | None, why: str) -> EngineRecord:
    """The record of a submission the engine never finished: it says so, and what to do."""
    text = f"not graded: {why}. Nothing was lost: grade this notebook again."
    return EngineRecord(path, learner, lab, unreadable=text, flags=[text], attempts=0, ended=NOT_GRADED)
