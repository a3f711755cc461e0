"""What a check run produced, in the words a learner reads: one vocabulary for check() and the grader.

A learner's ``check()`` in a kernel and the grader's checker run the same
pytest :class:`Collector`, so a check has the same status, the same message and
the same name in a notebook, in feedback and in ``grades.json``.
"""

from __future__ import annotations

import os
import re
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

__all__ = [
    "PASSED",
    "FAILED",
    "TIMED_OUT",
    "CRASHED",
    "ERROR",
    "NOT_RUN",
    "CHECK_BROKE",
    "NOT_GRADED",
    "HIDDEN_GENERIC",
    "NOT_WRITTEN",
    "Result",
    "Collector",
    "display_name",
    "failure_message",
    "hide",
    "exercise_of",
]

PASSED = "passed"
FAILED = "failed"
TIMED_OUT = "timed out"
CRASHED = "crashed"
ERROR = "error in your code"
NOT_RUN = "not run"
CHECK_BROKE = "check could not run"
NOT_GRADED = "not graded"  # a submission the engine never finished (it stopped): grade it again

HIDDEN_GENERIC = "a hidden check failed"
NOT_WRITTEN = "not written yet: the function still raises NotImplementedError — replace the stub with your code"
MAX_MESSAGE = 1200  # characters of a failure message kept (a repr of a huge value can be endless)


@dataclass
class Result:
    """One check's outcome."""

    nodeid: str
    name: str
    exercise: str
    status: str
    message: str = ""
    seconds: float = 0.0
    hidden: bool = False

    @property
    def passed(self) -> bool:
        return self.status == PASSED


def display_name(name: str) -> str:
    """``test_an_empty_file_gives_no_chunks[utf8]`` → ``an empty file gives no chunks (utf8)``."""
    base, _, params = name.partition("[")
    text = base.removeprefix("test_").replace("_", " ")
    return f"{text} ({params.rstrip(']')})" if params else text


def exercise_of(item: pytest.Item) -> str | None:
    marker = item.get_closest_marker("exercise")
    return str(marker.args[0]) if marker and marker.args else None


def failure_message(report: pytest.TestReport | pytest.CollectReport) -> str:
    """The part of a failure a learner can act on: the check's own words, never its code."""
    longrepr = report.longrepr
    if longrepr is None:
        return ""
    crash = getattr(longrepr, "reprcrash", None)
    text = crash.message if crash is not None else str(longrepr)
    if isinstance(longrepr, tuple):  # skips: (path, line, reason)
        text = str(longrepr[2])
    text = re.sub(r"^(Failed|Skipped): ", "", text)
    if text.startswith("AssertionError"):
        text = text.removeprefix("AssertionError").lstrip(": ")
        text = text.split("\nassert ", 1)[0].strip() or "a check failed"
    if "NotImplementedError" in text.split(":", 1)[0]:
        return NOT_WRITTEN
    where = (
        f" (at line {crash.lineno} of {crash.path})"
        if crash is not None and str(crash.path).startswith("<cell")
        else ""
    )
    return (text.strip() + where)[:MAX_MESSAGE]


def hide(message: str, hidden_dirs: Iterable[str]) -> str:
    """A hidden check's failure in words only: never its code, never where it lives."""
    text = message.strip()
    for directory in hidden_dirs:
        text = text.replace(directory, "<hidden>")
    if (
        not text
        or text.startswith(("assert ", "AssertionError", "a check failed"))
        or "<hidden>" in text
        or "\n" in text
        and "assert" in text
    ):
        return HIDDEN_GENERIC
    return text


def _from_learner(excinfo: pytest.ExceptionInfo[BaseException] | None) -> bool:
    """Did the failure start in the learner's code (a cell's frame, or an error from the sandbox)?"""
    if excinfo is None:
        return False
    from streamcourse.proxy import LearnerError

    if isinstance(excinfo.value, LearnerError):
        return True
    return any(frame.filename.startswith(("<cell", "<extra")) for frame in traceback.extract_tb(excinfo.tb))


def _is_closed(exc: BaseException) -> bool:
    from streamcourse.peer import Closed

    return isinstance(exc, Closed)


class Collector:
    """pytest plugin: each check's :class:`Result`, as it happens (``on_result``) and at the end."""

    def __init__(self, hidden: Iterable[str | Path] = (), on_result: Callable[[Result], None] | None = None) -> None:
        self.hidden = [str(Path(h).resolve()) for h in hidden]
        self.on_result = on_result
        self.collected: list[pytest.Item] = []  # the items, in order
        self._items: dict[str, pytest.Item] = {}
        self.collect_errors: list[str] = []
        self.exercises: list[str] = []  # every exercise the check files know, before filtering
        self.timed_out: set[str] = set()  # nodeids a time limit stopped (set by whoever imposes it)
        self._results: dict[str, Result] = {}
        self._learner_failures: set[str] = set()
        self._crashes: set[str] = set()  # the learner's process died under the check

    def is_hidden(self, item: pytest.Item) -> bool:
        path = str(getattr(item, "path", ""))
        return any(path == h or path.startswith(h + os.sep) for h in self.hidden)

    @pytest.hookimpl(tryfirst=True)
    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        self.exercises = sorted({exercise_of(item) or "" for item in items} - {""})

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        self.collected = list(session.items)
        self._items = {item.nodeid: item for item in session.items}

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if report.failed:
            self.collect_errors.append(f"{report.nodeid}: {failure_message(report)}")

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
        report = yield
        if _from_learner(call.excinfo):
            self._learner_failures.add(item.nodeid)
        if call.excinfo is not None and _is_closed(call.excinfo.value):
            self._crashes.add(item.nodeid)
        return report

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        known = self._results.get(report.nodeid)
        if report.when == "setup" and report.passed:
            return
        if report.when == "teardown" and (report.passed or (known is not None and known.status != PASSED)):
            return
        item = self._items.get(report.nodeid)
        hidden = item is not None and self.is_hidden(item)
        status, message = self._judge(report, hidden)
        result = Result(
            report.nodeid,
            getattr(item, "name", report.nodeid),
            (exercise_of(item) if item else "") or "",
            status,
            message[:MAX_MESSAGE],
            round(report.duration, 4),
            hidden,
        )
        self._results[report.nodeid] = result
        if self.on_result is not None:
            self.on_result(result)

    def _judge(self, report: pytest.TestReport, hidden: bool) -> tuple[str, str]:
        if report.passed:
            return PASSED, ""
        message = failure_message(report)
        if report.skipped:
            return NOT_RUN, f"this check was skipped ({message}); a skipped check does not count as passed"
        crash = getattr(report.longrepr, "reprcrash", None)
        kind = str(crash.message).split(":", 1)[0].strip() if crash is not None else "Failed"
        if report.nodeid in self.timed_out or "did not finish within" in message:
            status = TIMED_OUT
        elif kind == "MemoryError":
            status, message = (
                ERROR,
                "ran out of memory (MemoryError): does your code keep everything it reads, or never stop?",
            )
        elif report.nodeid in self._crashes:
            status = CRASHED
        elif kind not in ("AssertionError", "Failed") and report.nodeid in self._learner_failures:
            status = ERROR
        elif report.when == "setup":
            status = CHECK_BROKE
        else:
            status = FAILED
        if hidden and status != PASSED:
            generic = status in (FAILED, CHECK_BROKE) and kind not in ("AssertionError", "Failed")
            message = HIDDEN_GENERIC if generic else hide(message, self.hidden)
        return status, message

    @property
    def results(self) -> list[Result]:
        return list(self._results.values())
