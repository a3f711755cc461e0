"""The grading engine: a class of submissions, each graded by a checker process of its own.

``grade`` starts the engine (``python -m streamcourse.engine``) with a scrubbed
environment and hands it a :class:`~streamcourse.records.GradingSpec`. The engine:

* **warms up** — imports pytest, the libraries the checks use and the check
  files of the labs the class probably holds, so each checker starts in
  milliseconds (it is forked, and shares those pages);
* **forks one checker per submission**, at most ``workers`` at a time. Each checker
  takes a private loopback and starts the submission's runner in its sandbox
  (``streamcourse.checker``, ``streamcourse.isolation``); the engine itself never
  runs learner code and holds no solution;
* **keeps the wall clock** of every submission from outside: a checker past its
  budget is killed with its whole sandbox, and what it had already reported stands;
* turns each checker's stream of :class:`~streamcourse.records.Event`\\ s into one
  :class:`~streamcourse.records.SubmissionRecord` (:class:`SubmissionState`, a
  plain state machine with tests of its own) and writes it to ``grade``.

Output, one JSON object per line on stdout: ``{"event": "ready", ...}`` once warm,
``{"event": "done", "record": {...}}`` per submission, ``{"event": "fatal", ...}``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import selectors
import shutil
import signal
import sys
import tempfile
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from streamcourse import notebooks, processes
from streamcourse.records import (
    CellRecord,
    CheckRecord,
    Event,
    GradingSpec,
    Job,
    Limits,
    RecordError,
    SubmissionRecord,
    load,
)
from streamcourse.results import CRASHED, NOT_RUN, TIMED_OUT

__all__ = ["SubmissionState", "Engine", "main"]

GRACE = 2.0  # seconds past a submission's budget before its checker is killed from outside
MAX_EVENT = 1 << 20  # bytes of one checker event line


@dataclass
class SubmissionState:
    """What is known of one submission while its checker runs, and the record it makes."""

    job: Job
    limits: Limits
    expected: list[CheckRecord] = field(default_factory=list)  # the lab's checks, as the engine collected them
    started: float = 0.0
    lab: str | None = None
    unreadable: str = ""
    cells: dict[int, CellRecord] = field(default_factory=dict)
    checks: dict[str, CheckRecord] = field(default_factory=dict)
    collected: list[CheckRecord] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    current: str = ""  # the check running now, if any
    current_since: float = 0.0
    finished: bool = False
    attempts: int = 1

    @property
    def deadline(self) -> float:
        return self.started + self.limits.timeout + GRACE

    def on_event(self, event: Event, now: float) -> None:
        if event.kind == "lab":
            self.lab, self.unreadable = event.lab, event.text
        elif event.kind == "cell" and event.cell is not None:
            self.cells[event.cell.index] = event.cell
        elif event.kind == "collected":
            self.collected = list(event.checks)
        elif event.kind == "start":
            self.current, self.current_since = event.nodeid, now
        elif event.kind == "result":
            for check in event.checks:
                self.checks[check.nodeid] = check
            self.current = ""
        elif event.kind == "note":
            self.notes.append(event.text[:500])
        elif event.kind == "finished":
            self.finished, self.attempts = True, max(1, event.count)

    def end(self, how: str, now: float) -> SubmissionRecord:
        """The record, once the checker has ended: ``how`` is empty for a normal end."""
        ended = "" if self.finished and not how else how or "the checker stopped before it finished"
        if self.current and self.current not in self.checks and ended:
            seconds = now - self.current_since
            out_of_time = ended.startswith(TIMED_OUT)
            message = (
                f"your submission used up all its {self.limits.timeout:g} s during this check"
                if out_of_time
                else f"grading stopped during this check ({ended})"
            )
            known = next((c for c in self._planned() if c.nodeid == self.current), None)
            if known is not None:
                self.checks[known.nodeid] = dataclasses.replace(
                    known, status=TIMED_OUT if out_of_time else CRASHED, message=message, seconds=round(seconds, 3)
                )
        return SubmissionRecord(
            self.job.id,
            self.job.path,
            self.job.learner,
            self.lab,
            self.unreadable,
            [self.cells[i] for i in sorted(self.cells)],
            self._all_checks(ended),
            [],
            self.notes,
            self.attempts,
            ended,
            round(now - self.started, 3),
        )

    def _planned(self) -> list[CheckRecord]:
        return self.collected or self.expected

    def _all_checks(self, ended: str) -> list[CheckRecord]:
        checks = []
        for planned in self._planned():
            done = self.checks.get(planned.nodeid)
            if done is None:
                why = (
                    f"your submission {'ran out of time' if ended.startswith(TIMED_OUT) else 'stopped'} before this check"
                    if ended
                    else self.unreadable or "this check was collected but never ran"
                )
                done = dataclasses.replace(planned, status=NOT_RUN, message=why)
            checks.append(done)
        return checks


# --------------------------------------------------------------------------- the engine process


@dataclass
class _Running:
    state: SubmissionState
    pid: int
    fd: int
    slot: int
    buffer: bytes = b""


class Engine:
    """Schedules checkers over ``workers`` slots and keeps their clocks."""

    def __init__(self, spec: GradingSpec, emit: Callable[[dict[str, Any]], None]) -> None:
        self.spec, self.emit = spec, emit
        self.expected: dict[str, list[CheckRecord]] = {}
        self.root = tempfile.mkdtemp(prefix="streamcourse-engine-")
        self.selector = selectors.DefaultSelector()

    def warm_up(self) -> list[str]:
        from streamcourse import labchecks

        errors, self.expected = labchecks.collect(self.spec.hints, self.spec.labs, self.spec.hidden)
        processes.freeze_heap()
        processes.become_subreaper()
        return errors

    def run(self) -> None:
        pending = deque(self.spec.jobs)
        running: dict[int, _Running] = {}
        free = list(range(self.spec.workers))
        self.selector.register(sys.stdin.fileno(), selectors.EVENT_READ, None)
        try:
            while pending or running:
                while pending and free:
                    child = self._start(pending.popleft(), free.pop(0))
                    running[child.fd] = child
                self._wait(running, free)
        finally:
            for child in running.values():
                processes.kill_group(child.pid)
            processes.kill_descendants()
            shutil.rmtree(self.root, ignore_errors=True)

    def _start(self, job: Job, slot: int) -> _Running:
        from streamcourse import checker

        lab_guess = notebooks.lab_in_name(job.path)
        limits = self.spec.limits.for_lab(lab_guess)
        state = SubmissionState(job, limits, self.expected.get(lab_guess or "", []), time.monotonic())
        read_fd, write_fd = os.pipe()
        sys.stdout.flush()
        pid = os.fork()
        if pid == 0:  # the checker: never returns
            os.close(read_fd)
            checker.checker_process(job, slot, self.spec, Path(self.root), write_fd)
        os.close(write_fd)
        os.set_blocking(read_fd, False)
        child = _Running(state, pid, read_fd, slot)
        self.selector.register(read_fd, selectors.EVENT_READ, child)
        return child

    def _wait(self, running: dict[int, _Running], free: list[int]) -> None:
        now = time.monotonic()
        wait = min((c.state.deadline for c in running.values()), default=now + 1) - now
        for key, _ in self.selector.select(max(0.0, min(wait, 1.0))):
            if key.data is None:  # grade's end of our stdin: when it closes, grade went away
                if not os.read(key.fd, 4096):
                    raise SystemExit(3)
                continue
            child: _Running = key.data
            if not self._read(child):
                self._finish(child, running, free, "")
        now = time.monotonic()
        for child in list(running.values()):
            if now >= child.state.deadline:
                self._finish(child, running, free, f"{TIMED_OUT}: it used up its {child.state.limits.timeout:g} s")

    def _read(self, child: _Running) -> bool:
        """Take in what the checker wrote; False at the end of its stream."""
        try:
            data = os.read(child.fd, 1 << 16)
        except BlockingIOError:
            return True
        if not data:
            return False
        child.buffer += data
        *lines, child.buffer = child.buffer.split(b"\n")
        for line in lines:
            try:
                child.state.on_event(load(Event, line), time.monotonic())
            except RecordError as exc:
                child.state.notes.append(f"grader error: an unreadable event from the checker ({exc})")
        return len(child.buffer) <= MAX_EVENT

    def _finish(self, child: _Running, running: dict[int, _Running], free: list[int], how: str) -> None:
        self.selector.unregister(child.fd)
        os.close(child.fd)
        del running[child.fd]
        processes.kill_group(child.pid)
        status = processes.reap(child.pid)
        if not how and not child.state.finished:
            how = f"{CRASHED}: the checker {processes.describe_exit(status)}"
        processes.kill_descendants(keep=frozenset(c.pid for c in running.values()))  # what the checker left behind
        record = child.state.end(how, time.monotonic())
        free.append(child.slot)
        free.sort()
        self.emit({"event": "done", "record": dataclasses.asdict(record)})


def main() -> int:
    events = os.fdopen(os.dup(1), "w", buffering=1, encoding="utf-8")
    os.dup2(2, 1)  # stray prints from imported libraries must not reach the event channel

    def emit(message: dict[str, Any]) -> None:
        events.write(json.dumps(message, default=str) + "\n")
        events.flush()

    try:
        spec = load(GradingSpec, sys.stdin.buffer.readline())
        engine = Engine(spec, emit)
        errors = engine.warm_up()
        emit({"event": "ready", "collect_errors": errors})
        engine.run()
    except Exception as exc:  # noqa: BLE001 - reported to the grader, which exits non-zero
        import traceback

        traceback.print_exc()
        emit({"event": "fatal", "error": f"{type(exc).__name__}: {exc}"})
        return 1
    return 0


if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    sys.exit(main())
