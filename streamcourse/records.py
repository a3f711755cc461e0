"""The typed records that cross the grader's process boundaries, and their checked JSON form.

``grade`` → engine: a :class:`GradingSpec`; engine → checker: a :class:`Job`;
checker → engine: :class:`Event` lines; engine → ``grade``: :class:`SubmissionRecord`\\ s.
:func:`load` rebuilds a record from JSON and refuses anything that does not have
exactly the fields and types of the record, so a broken or hostile line is an
error, never a half-read result.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import types
import typing
from dataclasses import dataclass, field
from typing import Any, TypeVar

from streamcourse.isolation import SandboxLimits

__all__ = [
    "Limits",
    "Job",
    "GradingSpec",
    "CellRecord",
    "CheckRecord",
    "Event",
    "SubmissionRecord",
    "dump",
    "load",
    "submission_record",
    "RecordError",
]

T = TypeVar("T")


class RecordError(ValueError):
    """A line that is not the record it claims to be."""


@dataclass(frozen=True)
class Limits:
    """Per-submission limits. ``timeout`` is the whole wall-clock budget of one submission."""

    timeout: float = 60.0
    cell_timeout: float | None = None  # default: a quarter of timeout, 1..10 s
    check_timeout: float | None = None  # default: a third of timeout, 2..30 s
    attempts: int = 3  # runners started for one submission (a hang or a crash costs one)
    sandbox: SandboxLimits = field(default_factory=SandboxLimits)
    lab_timeouts: dict[str, float] = field(default_factory=dict)  # lab -> its own timeout, which replaces ``timeout``

    def for_lab(self, lab: str | None) -> Limits:
        """The limits of a submission of ``lab`` (as its file name says): that lab's own timeout, if it has one.

        A learner who renames a notebook gets that lab's time at most: the checks are
        chosen by the notebook's metadata, not by its name.
        """
        if lab not in self.lab_timeouts:
            return self
        return dataclasses.replace(self, timeout=self.lab_timeouts[lab], lab_timeouts={})

    @property
    def cell_seconds(self) -> float:
        return self.cell_timeout or min(10.0, max(1.0, self.timeout / 4))

    @property
    def check_seconds(self) -> float:
        return self.check_timeout or min(30.0, max(2.0, self.timeout / 3))


@dataclass(frozen=True)
class Job:
    """One submission to grade."""

    id: int
    path: str
    learner: str


@dataclass(frozen=True)
class GradingSpec:
    """Everything the engine needs: no secret, no instructor environment."""

    jobs: list[Job]
    labs: dict[str, list[str]]  # lab -> its exercises
    hidden: list[str]  # folders of hidden checks
    workers: int
    limits: Limits
    isolated: bool
    hints: list[str] = field(default_factory=list)  # labs the class probably holds: their checks load before forking


@dataclass(frozen=True)
class CellRecord:
    index: int
    status: str
    error: str = ""


@dataclass(frozen=True)
class CheckRecord:
    nodeid: str
    name: str
    exercise: str
    hidden: bool
    status: str
    message: str = ""
    seconds: float = 0.0


@dataclass(frozen=True)
class Event:
    """What a checker reports as it grades: ``kind`` says which of the optional fields is set."""

    kind: str  # "lab", "cell", "cell-start", "collected", "start", "result", "note", "finished"
    lab: str | None = None
    text: str = ""
    cell: CellRecord | None = None
    checks: list[CheckRecord] = field(default_factory=list)
    nodeid: str = ""
    count: int = 0  # "finished": how many runners the notebook needed


@dataclass
class SubmissionRecord:
    """How one submission went: what the engine hands back to ``grade``."""

    id: int
    path: str
    learner: str
    lab: str | None = None
    unreadable: str = ""
    cells: list[CellRecord] = field(default_factory=list)
    checks: list[CheckRecord] = field(default_factory=list)
    flags: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    attempts: int = 0
    ended: str = ""
    seconds: float = 0.0


def dump(record: Any) -> str:
    """One JSON line."""
    return json.dumps(dataclasses.asdict(record), ensure_ascii=False, separators=(",", ":"))


def load(kind: type[T], line: str | bytes) -> T:
    """The ``kind`` record a JSON line holds; :class:`RecordError` unless it is exactly that."""
    try:
        data = json.loads(line)
    except (ValueError, RecursionError) as exc:
        raise RecordError(f"not JSON: {type(exc).__name__}") from None
    built: T = _build(kind, data)
    return built


def submission_record(raw: SubmissionRecord | dict[str, Any]) -> SubmissionRecord:
    """A submission's record, from the record itself or its dict form (checked like a loaded line)."""
    if isinstance(raw, SubmissionRecord):
        return raw
    record: SubmissionRecord = _build(SubmissionRecord, raw)
    return record


@functools.cache
def _fields(kind: type) -> dict[str, Any]:
    """A record's field types, resolved once (resolving them compiles each annotation: the engine reads thousands)."""
    hints = typing.get_type_hints(kind)
    return {f.name: hints[f.name] for f in dataclasses.fields(kind)}


def _build(kind: Any, data: Any) -> Any:
    origin = typing.get_origin(kind)
    if isinstance(kind, type) and dataclasses.is_dataclass(kind):
        if type(data) is not dict:
            raise RecordError(f"{kind.__name__}: expected an object")
        hints = _fields(kind)
        names = hints.keys()
        if set(data) - names:
            raise RecordError(f"{kind.__name__}: unknown fields {sorted(set(data) - names)[:3]}")
        return kind(**{name: _build(hints[name], value) for name, value in data.items()})
    if origin in (types.UnionType, typing.Union):
        for option in typing.get_args(kind):
            try:
                return _build(option, data)
            except RecordError:
                continue
        raise RecordError(f"{data!r:.40} is none of {kind}")
    if origin is list:
        (item,) = typing.get_args(kind)
        if type(data) is not list:
            raise RecordError("expected a list")
        return [_build(item, value) for value in data]
    if origin is dict:
        key, value_kind = typing.get_args(kind)
        if type(data) is not dict:
            raise RecordError("expected an object")
        return {_build(key, k): _build(value_kind, v) for k, v in data.items()}
    if kind is type(None):
        if data is not None:
            raise RecordError("expected null")
        return None
    if kind is float and type(data) is int:
        return float(data)
    if type(data) is not kind:
        raise RecordError(f"expected {getattr(kind, '__name__', kind)}, got {type(data).__name__}")
    return data
