"""Run an exercise's checks against a learner's code, wherever that code lives.

The same check files (``tests/labs/test_labNN_*.py``) run in three places:

* inside a learner's kernel, when a lab cell calls ``check("lab01.batched")``:
  the checks see the kernel's current definitions;
* in the grader's child process, against a submitted notebook;
* under plain ``pytest tests/labs``, against ``solutions/`` (or ``--notebook-dir labs``).

A check gets the learner's code through the ``submission`` fixture and names its
exercise with ``@pytest.mark.exercise("lab01.batched")``. This module is also
the pytest plugin that provides both.

Why pytest runs in a worker thread inside the kernel: the kernel's event loop
is already running, and async checks need a loop of their own.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import io
import os
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import pytest

from streamcourse import cells, notebooks
from streamcourse.results import (
    FAILED,
    PASSED,
    Collector,
    Result,
    display_name,
    exercise_of,
    failure_message,
)
from streamcourse.server import Served

__all__ = [
    "failure_message",
    "REPO",
    "CHECKS_DIR",
    "SOLUTIONS_DIR",
    "Namespace",
    "Result",
    "Run",
    "Submission",
    "execute_notebook",
    "run_checks",
    "check",
    "within",
]

REPO = Path(__file__).resolve().parent.parent
CHECKS_DIR = REPO / "tests" / "labs"
SOLUTIONS_DIR = REPO / "solutions"
#: A whole check() in the kernel gives up after this many seconds.
CHECK_TIMEOUT = float(os.environ.get("STREAMCOURSE_CHECK_TIMEOUT", "120"))

#: How the ``submission`` fixture gets the learner's code: set by whoever runs the checks.
SUBMISSION_KEY = pytest.StashKey[Callable[[pytest.FixtureRequest], Any]]()


# --------------------------------------------------------------------------- namespaces


@dataclass
class Namespace:
    """A learner's definitions plus what went wrong while making them."""

    values: dict[str, Any]
    errors: list[cells.CellOutcome] = field(default_factory=list)
    origin: str = "this notebook"


def execute_notebook(path: str | Path, extra_code: Iterable[str] = ()) -> Namespace:
    """Run a notebook's code cells (not its ``check()`` cells) into a fresh namespace, in this process."""
    nb = notebooks.read(path)
    values: dict[str, Any] = {"__name__": "__main__", "check": cells.no_check}
    namespace = Namespace(values, origin=str(path))
    loop = asyncio.new_event_loop()
    printed = _Discard()  # what the notebook prints is not graded, and may be endless
    code = [(i, source) for i, source in notebooks.code_cells(nb) if not notebooks.is_check_cell(source)]
    with contextlib.redirect_stdout(printed), contextlib.redirect_stderr(printed):
        namespace.errors += [o for o in cells.run_cells(code, values, loop.run_until_complete) if o.error]
        for n, extra in enumerate(extra_code):
            cells.run_cell(extra, values, f"<extra {n}>", loop.run_until_complete)
    return namespace


class _Discard(io.TextIOBase):
    def write(self, text: str) -> int:
        return len(text)


def kernel_namespace() -> Namespace:
    """The definitions of the kernel (or script) that calls check()."""
    try:
        from IPython import get_ipython

        shell = get_ipython()
    except ImportError:  # pragma: no cover - IPython comes with ipykernel
        shell = None
    if shell is not None:
        return Namespace(shell.user_ns)
    import __main__

    return Namespace(vars(__main__))


# --------------------------------------------------------------------------- the fixture


class Submission:
    """The learner's definitions, as attributes; a missing one fails with advice, not a KeyError."""

    def __init__(self, namespace: Namespace) -> None:
        self._namespace = namespace

    def __getattr__(self, name: str) -> Any:
        values = self._namespace.values
        if name in values:
            return values[name]
        advice = f"`{name}` is not defined: run the exercise cell that defines it (and the cells above it), then check again."
        if self._namespace.errors:
            first = self._namespace.errors[0]
            advice += f" Note: cell {first.index} of {self._namespace.origin} raised {first.error}"
        pytest.fail(advice, pytrace=False)

    def __contains__(self, name: str) -> bool:
        return name in self._namespace.values

    @property
    def process(self) -> psutil.Process:
        """The process the learner's code runs in: measure open files and memory here, from outside it."""
        return psutil.Process()

    def build(self, builder: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Call a ``streamcourse.harness`` builder beside the learner's code (here: in this process)."""
        if getattr(builder, "__module__", None) != "streamcourse.harness":
            raise pytest.UsageError(f"submission.build takes builders from streamcourse.harness, not {builder!r}")
        return builder(*args, **kwargs)


def within(
    seconds: float,
    fn: Callable[..., Any],
    *args: Any,
    what: str = "your code",
    hopeless: Callable[[], str] | None = None,
) -> Any:
    """Call ``fn(*args)`` in a daemon thread; fail (not hang) when it takes longer than ``seconds``.

    ``hopeless()``, asked every 20 ms while the call runs, may say why it can never
    finish (a reason, else ""): the check then fails at once, with that reason.
    """
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = fn(*args)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
            box["error"] = exc

    worker = threading.Thread(target=target, daemon=True, name="streamcourse-within")
    worker.start()
    deadline = time.monotonic() + seconds
    while worker.is_alive() and (left := deadline - time.monotonic()) > 0:
        worker.join(left if hopeless is None else min(left, 0.02))
        if hopeless is not None and worker.is_alive() and (why := hopeless()):
            pytest.fail(f"{what}: {why}", pytrace=False)
    if worker.is_alive():
        pytest.fail(
            f"{what} did not finish within {seconds:g} s — does it read more of its input than it needs?", pytrace=False
        )
    if "error" in box:
        raise box["error"]
    return box.get("value")


def _lab_of_exercise(exercise: str) -> str:
    return exercise.split(".", 1)[0]


def _notebook_for(lab: str, directory: Path) -> Path:
    matches = sorted(directory.glob(f"{lab}_*.ipynb"))
    if not matches:
        raise pytest.UsageError(f"no notebook for {lab} in {directory} (expected {lab}_<title>.ipynb)")
    return matches[0]


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("streamcourse")
    group.addoption("--notebook", help="check this notebook instead of the solution")
    group.addoption("--notebook-dir", help="check the labNN_*.ipynb notebooks of this folder (default: solutions/)")
    group.addoption("--exercise", action="append", default=[], help="run only this exercise's checks (repeatable)")
    group.addoption(
        "--also-run",
        action="append",
        default=[],
        help="a Python file run after the notebook (e.g. a known wrong answer)",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "exercise(id): the exercise a check belongs to, e.g. 'lab01.batched'")
    config.addinivalue_line(
        "markers",
        "behaviour(why): pins a plain behaviour every answer must have, so it need "
        "not reject a known wrong answer (validate asks every other check to reject one)",
    )
    config._streamcourse_cache = {}  # type: ignore[attr-defined]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    unmarked = [i.nodeid for i in items if "submission" in getattr(i, "fixturenames", ()) and not exercise_of(i)]
    if unmarked:
        raise pytest.UsageError("checks without @pytest.mark.exercise(...): " + ", ".join(unmarked))
    wanted = set(config.getoption("exercise") or ())
    if not wanted:
        return
    keep = [i for i in items if exercise_of(i) in wanted]
    dropped = [i for i in items if exercise_of(i) not in wanted]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
    items[:] = keep


@pytest.fixture
def submission(request: pytest.FixtureRequest) -> Any:
    """The learner's definitions for the lab of the requesting check."""
    config = request.config
    provide = config.stash.get(SUBMISSION_KEY, None)
    if provide is not None:
        return provide(request)
    exercise = exercise_of(request.node)
    if exercise is None:
        raise pytest.UsageError(f"{request.node.nodeid} uses `submission` without @pytest.mark.exercise(...)")
    lab = _lab_of_exercise(exercise)
    if config.getoption("notebook"):
        path = Path(config.getoption("notebook"))
    else:
        path = _notebook_for(lab, Path(config.getoption("notebook_dir") or SOLUTIONS_DIR))
    extra = tuple(Path(p).read_text(encoding="utf-8") for p in config.getoption("also_run"))
    cache: dict[Any, Namespace] = config._streamcourse_cache  # type: ignore[attr-defined]
    key = (path.resolve(), extra)
    if key not in cache:
        cache[key] = execute_notebook(path, extra)
    return Submission(cache[key])


@pytest.fixture
def servers() -> Iterator[list[Served]]:
    """Servers a check starts (append them); all stopped when it ends, even when it fails."""
    started: list[Served] = []
    yield started
    stopping = [threading.Thread(target=server.stop) for server in started]  # each stop waits ~0.1 s: together
    for thread in stopping:
        thread.start()
    for thread in stopping:
        thread.join()


# --------------------------------------------------------------------------- running checks


def _pytest_args(exercises: Iterable[str], check_dirs: Iterable[Path]) -> list[str]:
    args = [str(d) for d in check_dirs]
    for exercise in exercises:
        args += ["--exercise", exercise]
    return args + [
        "-q",
        "--capture=no",
        "--disable-plugin-autoload",  # only the plugins of _plugins(): the installed ones cost seconds
        "-p",
        "no:cacheprovider",
        "-p",
        "no:faulthandler",
        "--import-mode=importlib",
        "--rootdir",
        str(CHECKS_DIR),
        "-c",
        str(CHECKS_DIR / "checks.ini"),
        "-W",
        "ignore::pytest.PytestUnraisableExceptionWarning",
    ]


@dataclass
class Run:
    collected: list[str]
    results: list[Result]
    collect_errors: list[str]
    output: str
    exercises: list[str]  # every exercise the check files know, before filtering

    @property
    def passed(self) -> bool:
        return bool(self.results) and all(r.passed for r in self.results)

    @property
    def ran_all(self) -> bool:
        """False when pytest broke off (an INTERNALERROR): the missing results would have said something."""
        return len(self.results) == len(self.collected)


def _plugins() -> list[object]:
    """The plugins checks need, as modules: named with ``-p``, each would cost a scan of every installed package."""
    import pytest_asyncio.plugin

    return [pytest_asyncio.plugin, sys.modules[__name__]]


class _Provide:
    """pytest plugin: hands the ``submission`` fixture its source of the learner's code."""

    def __init__(self, provide: Callable[[pytest.FixtureRequest], Any]) -> None:
        self.provide = provide

    def pytest_configure(self, config: pytest.Config) -> None:
        config.stash[SUBMISSION_KEY] = self.provide


def run_checks(
    namespace: Namespace | None = None,
    exercises: Iterable[str] = (),
    check_dirs: Iterable[Path] = (CHECKS_DIR,),
    extra_args: Iterable[str] = (),
    plugins: Iterable[object] = (),
    output: io.TextIOBase | None = None,
    collector: Collector | None = None,
    provide: Callable[[pytest.FixtureRequest], Any] | None = None,
) -> Run:
    """Run checks in this process (in the calling thread) and return each outcome.

    The learner's code comes from ``namespace`` (their definitions, here) or from
    ``provide`` (the grader's checker hands out a handle on its sandbox); with
    neither, checks run against the notebook pytest's options name. ``collector``
    is the results plugin (the grader passes one that streams each result);
    ``output``, when given, receives what the run prints (a capped writer, so a
    flood of prints cannot eat the memory).
    """
    collector = collector or Collector()
    if namespace is not None:
        provide = lambda request, ns=namespace: Submission(ns)  # noqa: E731 - a one-line provider
    injected = [_Provide(provide)] if provide is not None else []
    out = io.StringIO()
    sink = out if output is None else output
    with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
        pytest.main(
            _pytest_args(exercises, check_dirs) + list(extra_args),
            plugins=[*_plugins(), collector, *injected, *plugins],
        )
    nodeids = [item.nodeid for item in collector.collected]
    return Run(nodeids, collector.results, collector.collect_errors, out.getvalue(), collector.exercises)


# --------------------------------------------------------------------------- check() in a notebook


@dataclass(repr=False)
class Report:
    exercise: str
    results: list[Result]
    problem: str = ""

    @property
    def passed(self) -> bool:
        return not self.problem and bool(self.results) and all(r.passed for r in self.results)

    def lines(self) -> list[tuple[bool, str, str]]:
        return [(r.passed, display_name(r.name), _said(r)) for r in self.results]

    def __str__(self) -> str:
        if self.problem:
            return f"{self.exercise}: {self.problem}"
        passed = sum(ok for ok, _, _ in self.lines())
        head = f"{self.exercise}: {passed}/{len(self.results)} checks passed" + (" — well done!" if self.passed else "")
        body = [f"  {'✔' if ok else '✘'} {name}" + ("" if ok else f"\n      {msg}") for ok, name, msg in self.lines()]
        return "\n".join([head, *body])

    __repr__ = __str__

    def _repr_html_(self) -> str:
        if self.problem:
            return f"<div style='color:#b35900'><b>{html.escape(self.exercise)}</b>: {html.escape(self.problem)}</div>"
        passed = sum(ok for ok, _, _ in self.lines())
        colour = "#1a7f37" if self.passed else "#cf222e"
        rows = "".join(
            f"<li>{'✔' if ok else '✘'} {html.escape(name)}"
            + ("" if ok else f"<br><span style='color:#cf222e'>{html.escape(msg)}</span>")
            + "</li>"
            for ok, name, msg in self.lines()
        )
        return (
            f"<div><b style='color:{colour}'>{html.escape(self.exercise)}: {passed}/{len(self.results)} checks passed</b>"
            f"<ul style='list-style:none;padding-left:1em'>{rows}</ul></div>"
        )


def _said(result: Result) -> str:
    """A check's message, with its status where "failed" would not be the whole story."""
    if result.status in (PASSED, FAILED):
        return result.message
    return f"{result.status}: {result.message}" if result.message else result.status


class _Worker:
    """The check run started last in this kernel: a thread cannot be stopped from outside, so one at a time."""

    thread: threading.Thread | None = None
    exercise = ""


def _still_running(exercise: str) -> Report | None:
    if _Worker.thread is None or not _Worker.thread.is_alive():
        return None
    return Report(
        exercise,
        [],
        f"the checks of {_Worker.exercise} from an earlier check() are still running in this "
        "kernel (your code there has not returned), and a second run beside them would mix up their "
        "results. Restart the kernel (Kernel → Restart Kernel), run the lab's cells again, then check again.",
    )


class _Progress:
    """A pytest plugin that counts finished checks, so the kernel can show a live count while they run."""

    def __init__(self) -> None:
        self.done = 0
        self.total = 0

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        self.total = len(session.items)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when == "teardown":
            self.done += 1


#: Called as ``on_progress(checks done, checks collected, seconds so far)``.
Progress = Callable[[int, int, float], None]


def _wait(worker: threading.Thread, timeout: float, progress: _Progress, on_progress: Progress | None) -> None:
    """Join ``worker`` for up to ``timeout`` s, reporting progress from this thread about four times a second."""
    started = time.monotonic()
    while worker.is_alive() and (left := timeout - (time.monotonic() - started)) > 0:
        worker.join(min(0.25, left))
        if on_progress is not None and worker.is_alive():
            on_progress(progress.done, progress.total, time.monotonic() - started)


def check_report(
    exercise: str,
    namespace: Namespace | None = None,
    timeout: float = CHECK_TIMEOUT,
    on_progress: Progress | None = None,
) -> Report:
    """Run one exercise's checks against ``namespace`` (default: the caller's kernel) in a worker thread.

    ``on_progress`` is called from the CALLING thread while the checks run (a kernel shows a live count).
    """
    refused = _still_running(exercise)
    if refused is not None:
        return refused
    namespace = namespace or kernel_namespace()
    # hypothesis keeps caches in ./.hypothesis: keep the learner's lab folder clean
    os.environ.setdefault(
        "HYPOTHESIS_STORAGE_DIRECTORY", os.path.join(tempfile.gettempdir(), "streamcourse-hypothesis")
    )
    box: dict[str, Run] = {}
    progress = _Progress()
    worker = threading.Thread(
        target=lambda: box.setdefault("run", run_checks(namespace, [exercise], plugins=[progress])),
        daemon=True,
        name="streamcourse-check",
    )
    _Worker.thread, _Worker.exercise = worker, exercise
    worker.start()
    _wait(worker, timeout, progress, on_progress)
    if worker.is_alive():
        return Report(
            exercise,
            [],
            f"the checks did not finish within {timeout:g} s — does your code loop forever or wait for something that never comes? Restart the kernel (interrupting it cannot stop a check run), fix your code, and check again.",
        )
    run = box["run"]
    if run.collect_errors:
        return Report(exercise, [], "the checks could not be loaded: " + "; ".join(run.collect_errors))
    if not run.collected:
        return Report(exercise, [], f"no checks for {exercise!r}; known exercises: {', '.join(run.exercises)}")
    if not run.ran_all:  # never report a partial run as a pass
        last = run.output.strip().splitlines()[-1:] or ["no output"]
        return Report(
            exercise,
            [],
            f"only {len(run.results)} of {len(run.collected)} checks ran before the check run stopped ({last[0]}). Run the check again; if it keeps happening, restart the kernel.",
        )
    return Report(exercise, run.results)


def check(exercise: str) -> None:
    """Run the checks of ``exercise`` against this kernel's definitions and show what passed.

    In a kernel a live line counts the checks as they finish; the report then replaces it.
    """
    try:
        from IPython import get_ipython
        from IPython.display import HTML, display
    except ImportError:  # pragma: no cover
        print(check_report(exercise))
        return
    if get_ipython() is None:
        print(check_report(exercise))
        return
    live = display(HTML(f"checking {html.escape(exercise)}…"), display_id=True)

    def show(done: int, total: int, seconds: float) -> None:
        live.update(HTML(f"checking {html.escape(exercise)}: {done}/{total or '?'} checks done ({seconds:.0f} s)"))

    live.update(check_report(exercise, on_progress=show))
