"""The trusted side of grading one submission: start its runner, run the lab's checks, report each result.

A checker is forked by the engine for one submission. It never runs learner
code: it starts a *runner* in the sandbox (``streamcourse.isolation``), follows
the notebook's cells as the runner reports them — with a wall clock of its own
per cell — and then runs the lab's checks with pytest here, handing them a
:class:`RemoteSubmission` instead of the learner's namespace. Whatever the runner
answers is data for the checks; the verdicts are made here.

When a cell or a check outlasts its time, or the runner dies, the checker kills
the whole sandbox and starts a fresh runner (skipping the cell that hung) for
the checks that are left, until the submission's attempts are used up.
"""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from streamcourse import isolation, notebooks, processes
from streamcourse.labchecks import PYTEST_EXTRA, Capped, check_paths
from streamcourse.records import CellRecord, CheckRecord, Event, GradingSpec, Job, Limits, dump
from streamcourse.remote import START_SECONDS, NotebookState, RemoteSubmission, Runner
from streamcourse.results import CRASHED, ERROR, TIMED_OUT, Collector, Result

__all__ = ["Checker", "grade_one", "checker_process"]

GRACE = 0.5  # seconds beyond a cell's own limit before the checker stops the runner from outside


# --------------------------------------------------------------------------- one submission


class CheckTimeout(BaseException):
    """A check ran past its time (a BaseException: a check's own ``except Exception`` must not swallow it)."""


class Checker:
    """Grades one submission: the runner's cells, then the lab's checks; ``emit`` gets each event."""

    def __init__(
        self, notebook: Path, shared: Path, limits: Limits, isolated: bool, slot: int, emit: Callable[[Event], None]
    ) -> None:
        self.runner = Runner(notebook, shared, limits, isolated, slot)
        self.limits, self.emit = limits, emit
        self.state = NotebookState()
        self.skip: list[int] = []
        self.attempts = 0
        self.collector: Collector | None = None

    # ---- the notebook
    def start_runner(self) -> bool:
        """Start a fresh runner and follow its cells; False when no usable runner could be had."""
        while self.attempts < self.limits.attempts:
            self.attempts += 1
            self.state.errors.clear()
            self.runner.start(self.skip)
            if self._follow_cells():
                return True
        return False

    def _follow_cells(self) -> bool:
        current, seconds = None, START_SECONDS
        while True:
            event = self.runner.next_event(seconds)
            if event is None:
                silent = self.runner.alive  # alive but silent past its time: a hang; otherwise it died
                ended = self.runner.stop()
                return self._runner_lost(current, ended, timed_out=silent)
            kind, data = event
            if kind == "lab":
                self._lab(data)
                if self.state.lab is None or self.state.unreadable:
                    return True
            elif kind == "cell-start":
                current, seconds = int(data["index"]), self.limits.cell_seconds + GRACE
            elif kind == "cell":
                self._cell(int(data["index"]), str(data["error"])[:1200])
                current, seconds = None, START_SECONDS
            elif kind == "ready":
                return True

    def _lab(self, data: dict[str, Any]) -> None:
        lab, error = data.get("lab"), str(data.get("error") or "")
        if self.attempts == 1:
            self.state.lab, self.state.unreadable = (lab if isinstance(lab, str) else None), error[:1200]
            self.emit(Event("lab", lab=self.state.lab, text=self.state.unreadable))

    def _cell(self, index: int, error: str) -> None:
        if not error or index in self.skip:  # a cell skipped because it hung or crashed before: already told
            return
        timed_out = "CellTimeout" in error
        status = TIMED_OUT if timed_out else ERROR
        text = (
            (
                f"cell {index} did not finish within {self.limits.cell_seconds:g} s and was stopped (an endless loop "
                "or a server that never returns?); the rest was graded"
            )
            if timed_out
            else f"cell {index} raised {error}"
        )
        self.state.errors.append((index, error))
        self._record_cell(CellRecord(index, status, text))

    def _record_cell(self, cell: CellRecord) -> None:
        if cell.index not in self.state.cells:
            self.state.cells[cell.index] = cell
            self.emit(Event("cell", cell=cell))

    def _runner_lost(self, current: int | None, ended: str, timed_out: bool) -> bool:
        """The runner went silent or died while running cells: name the cell, skip it next time."""
        if current is None:
            self.emit(
                Event("note", text=f"attempt {self.attempts}: the runner stopped before its notebook ran ({ended})")
            )
            return False
        verb = "did not finish in time and was stopped" if timed_out else f"stopped the notebook ({ended})"
        self._record_cell(
            CellRecord(
                current,
                TIMED_OUT if timed_out else CRASHED,
                f"cell {current} {verb}; it was skipped and the rest graded",
            )
        )
        self.skip.append(current)
        self.emit(
            Event(
                "note",
                text=f"attempt {self.attempts} ended in cell {current} ({ended}); graded the rest in a fresh runner",
            )
        )
        return False

    # ---- the checks
    def provide(self, request: pytest.FixtureRequest) -> RemoteSubmission:
        if not self.runner.alive and not self.start_runner():
            pytest.fail(
                "the runner for your notebook could not be started again (it kept hanging or crashing)", pytrace=False
            )
        return RemoteSubmission(self.runner, self.state)

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        checks = [
            CheckRecord(i.nodeid, i.name, _exercise(i), self.collector.is_hidden(i) if self.collector else False, "")
            for i in session.items
        ]
        self.emit(Event("collected", checks=checks))

    def pytest_runtest_logstart(self, nodeid: str, location: Any) -> None:
        self.emit(Event("start", nodeid=nodeid))

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_protocol(self, item: pytest.Item) -> Iterator[None]:
        try:
            return (yield)
        finally:
            peer = self.runner.peer
            if peer is not None and (peer.busy or item.nodeid in self._timed_out()):
                self.runner.stop()  # calls still running in the learner's code: a fresh runner for the next check
            elif peer is not None and not peer.closed.is_set():
                peer.forget()

    def _timed_out(self) -> set[str]:
        return self.collector.timed_out if self.collector else set()

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_call(self, item: pytest.Item) -> Iterator[None]:
        return (yield from self._timed(item))

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_setup(self, item: pytest.Item) -> Iterator[None]:
        return (yield from self._timed(item))

    def _timed(self, item: pytest.Item) -> Iterator[None]:
        seconds = self.limits.check_seconds
        _readable(self.runner.shared)  # files this check made for the learner's code: theirs to read

        def expire(signum: int, frame: Any) -> None:
            raise CheckTimeout(f"this check did not finish within {seconds:g} s")

        previous = signal.signal(signal.SIGALRM, expire)
        signal.setitimer(signal.ITIMER_REAL, seconds)
        try:
            return (yield)
        except CheckTimeout:
            self._timed_out().add(item.nodeid)
            raise
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)

    def on_result(self, result: Result) -> None:
        if result.nodeid in self._timed_out():
            result.message = (
                f"this check did not finish within {self.limits.check_seconds:g} s — does your code loop "
                "forever or wait for something that never comes?"
            )
        elif result.status == CRASHED:
            result.message = f"the process running your code stopped during this check ({self.runner.stop()})"
        self.emit(
            Event(
                "result",
                checks=[
                    CheckRecord(
                        result.nodeid,
                        result.name,
                        result.exercise,
                        result.hidden,
                        result.status,
                        result.message,
                        result.seconds,
                    )
                ],
            )
        )


def _exercise(item: pytest.Item) -> str:
    from streamcourse.results import exercise_of

    return exercise_of(item) or ""


def _readable(folder: Path) -> None:
    """pytest makes its temporary folders private (0700); the runner, another uid, must read what checks put there."""
    for path in [folder, *folder.rglob("*")]:
        if path.is_dir() and not path.is_symlink():
            path.chmod(0o755)


def shared_folder(root: Path) -> Path:
    """The folder checks put files in for the learner's code (bound read-only into the sandbox)."""
    folder = root / "share"
    folder.mkdir(mode=0o755, exist_ok=True)
    os.chmod(folder, 0o755)  # noqa: S103 - the sandbox's user reads what checks put here (it is read-only there)
    return folder


# --------------------------------------------------------------------------- the checker process


def checker_process(job: Job, slot: int, spec: GradingSpec, root: Path, write_fd: int) -> None:
    """Runs in the forked checker: isolate, grade ``job``, report on ``write_fd``. Never returns."""
    exit_now = os._exit
    try:
        os.setpgid(0, 0)
        processes.die_with_parent()
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGCHLD, signal.SIGALRM):
            signal.signal(sig, signal.SIG_DFL)
        devnull = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(devnull, fd)
        private = Path(tempfile.mkdtemp(prefix=f"s{job.id}-", dir=root))
        if spec.isolated:
            isolation.private_network()
        os.environ.update(HOME=str(private), TMPDIR=str(private))
        tempfile.tempdir = str(private)
        writer = os.fdopen(write_fd, "w", buffering=1, encoding="utf-8")

        def emit(event: Event) -> None:
            writer.write(dump(event) + "\n")
            writer.flush()

        grade_one(job, slot, spec, private, emit)
        writer.close()
    except BaseException:  # noqa: BLE001 - the engine sees the exit status and labels what was running
        exit_now(70)
    exit_now(0)


def grade_one(job: Job, slot: int, spec: GradingSpec, private: Path, emit: Callable[[Event], None]) -> None:
    """The notebook's cells in a runner, then the lab's checks here; each event to ``emit``."""
    from streamcourse.checking import run_checks

    notebook = _copy_in(Path(job.path), private)
    if notebook is None:
        too_big = f"{Path(job.path).name} is too big to be a notebook (over 20 MB)"
        emit(Event("lab", lab=notebooks.lab_in_name(job.path), text=too_big))
        emit(Event("finished", count=0))
        return
    limits = spec.limits.for_lab(notebooks.lab_in_name(job.path))
    checker = Checker(notebook, shared_folder(private), limits, spec.isolated, slot, emit)
    try:
        lab = checker.state.lab if checker.start_runner() else None
        if lab in spec.labs and lab is not None and not checker.state.unreadable:
            checker.collector = Collector(spec.hidden, on_result=checker.on_result)
            run_checks(
                exercises=spec.labs[lab],
                check_dirs=check_paths(lab, spec.hidden),
                extra_args=["--basetemp", str(checker.runner.shared / "pytest"), *PYTEST_EXTRA],
                plugins=[checker],
                collector=checker.collector,
                provide=checker.provide,
                output=Capped(),
            )
    finally:
        checker.runner.stop()
        emit(Event("finished", count=checker.attempts))


def _copy_in(path: Path, private: Path) -> Path | None:
    """A private copy of the submission (the runner sees only it); None when it is too big to be a notebook."""
    if path.stat().st_size > 20 * 1024 * 1024:
        return None
    name = "".join(c if c.isalnum() or c in "._-" else "_" for c in path.name)[-120:] or "notebook.ipynb"
    copy = private / "in" / name
    copy.parent.mkdir()
    shutil.copyfile(path, copy)
    return copy
