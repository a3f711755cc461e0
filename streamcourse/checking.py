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

import ast
import asyncio
import contextlib
import html
import inspect
import io
import linecache
import os
import re
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import psutil
import pytest

from streamcourse import notebooks
from streamcourse.server import Server

__all__ = [
    "failure_message",
    "REPO",
    "CHECKS_DIR",
    "SOLUTIONS_DIR",
    "Namespace",
    "Result",
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

_NS_KEY = pytest.StashKey["Namespace"]()
_NOT_WRITTEN = "not written yet: the function still raises NotImplementedError — replace the stub with your code"


# --------------------------------------------------------------------------- namespaces


@dataclass
class CellError:
    cell: int
    error: str


@dataclass
class Namespace:
    """A learner's definitions plus what went wrong while making them."""

    values: dict[str, Any]
    errors: list[CellError] = field(default_factory=list)
    origin: str = "this notebook"


def strip_magics(source: str) -> str:
    """Comment out IPython-only lines (``%magic``, ``!shell``): they mean nothing to plain Python."""
    return "\n".join(
        "# " + line if line.lstrip().startswith(("%", "!")) else line for line in source.splitlines()
    )


def run_cell(source: str, values: dict[str, Any], filename: str, loop: asyncio.AbstractEventLoop) -> None:
    """Execute one cell as Jupyter would: top-level ``await`` allowed, source kept for tracebacks."""
    source = strip_magics(source)
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    code = compile(source, filename, "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT, dont_inherit=True)
    result = eval(code, values)  # noqa: S307 - executing the learner's notebook is the point
    if inspect.CO_COROUTINE & code.co_flags:
        loop.run_until_complete(result)


def execute_notebook(path: str | Path, extra_code: Iterable[str] = ()) -> Namespace:
    """Run a notebook's code cells (not its ``check()`` cells) into a fresh namespace.

    A cell that raises is recorded and skipped, as in Jupyter when a learner
    moves on: later exercises still get their chance.
    """
    nb = notebooks.read(path)
    values: dict[str, Any] = {"__name__": "__main__", "check": _no_check}
    namespace = Namespace(values, origin=str(path))
    loop = asyncio.new_event_loop()
    printed = _Discard()  # what the notebook prints is not graded, and may be endless
    with contextlib.redirect_stdout(printed), contextlib.redirect_stderr(printed):
        for index, source in notebooks.code_cells(nb):
            if notebooks.is_check_cell(source):
                continue
            try:
                run_cell(source, values, f"<cell {index}>", loop)
            except Exception as exc:  # noqa: BLE001 - the learner's error is data here
                namespace.errors.append(CellError(index, f"{type(exc).__name__}: {exc}"))
        for n, code in enumerate(extra_code):
            run_cell(code, values, f"<extra {n}>", loop)
    return namespace


class _Discard(io.TextIOBase):
    def write(self, text: str) -> int:
        return len(text)


def _no_check(exercise: str) -> None:
    """Stands in for check() while a notebook is executed for checking."""


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
            advice += f" Note: cell {first.cell} of {self._namespace.origin} raised {first.error}"
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


def within(seconds: float, fn: Callable[..., Any], *args: Any, what: str = "your code") -> Any:
    """Call ``fn(*args)`` in a daemon thread; fail (not hang) when it takes longer than ``seconds``."""
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = fn(*args)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
            box["error"] = exc

    worker = threading.Thread(target=target, daemon=True, name="streamcourse-within")
    worker.start()
    worker.join(seconds)
    if worker.is_alive():
        pytest.fail(f"{what} did not finish within {seconds:g} s — does it read more of its input than it needs?", pytrace=False)
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
    group.addoption("--also-run", action="append", default=[], help="a Python file run after the notebook (e.g. a known wrong answer)")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "exercise(id): the exercise a check belongs to, e.g. 'lab01.batched'")
    config._streamcourse_cache = {}  # type: ignore[attr-defined]


def exercise_of(item: pytest.Item) -> str | None:
    marker = item.get_closest_marker("exercise")
    return str(marker.args[0]) if marker and marker.args else None


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
def submission(request: pytest.FixtureRequest) -> Submission:
    """The learner's definitions for the lab of the requesting check."""
    config = request.config
    injected = config.stash.get(_NS_KEY, None)
    if injected is not None:
        return Submission(injected)
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
def servers() -> Iterator[list[Server]]:
    """Servers a check starts (append them); all stopped when it ends, even when it fails."""
    started: list[Server] = []
    yield started
    stopping = [threading.Thread(target=server.stop) for server in started]  # each stop waits ~0.1 s: together
    for thread in stopping:
        thread.start()
    for thread in stopping:
        thread.join()


# --------------------------------------------------------------------------- running checks


@dataclass
class Result:
    nodeid: str
    name: str
    exercise: str
    outcome: str  # "passed", "failed", "error" (the check itself broke), "skipped"
    message: str = ""
    seconds: float = 0.0


class _Collector:
    """Plugin that injects a namespace and keeps each check's outcome."""

    def __init__(self, namespace: Namespace | None) -> None:
        self.namespace = namespace
        self._by_node: dict[str, Result] = {}
        self._exercises: dict[str, str] = {}
        self._names: dict[str, str] = {}
        self.collected: list[str] = []
        self.collect_errors: list[str] = []
        self.exercises: list[str] = []

    def pytest_configure(self, config: pytest.Config) -> None:
        if self.namespace is not None:
            config.stash[_NS_KEY] = self.namespace

    @pytest.hookimpl(tryfirst=True)
    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        self.exercises = sorted({exercise_of(item) or "" for item in items} - {""})

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        self.collected = [item.nodeid for item in session.items]
        self._exercises = {item.nodeid: exercise_of(item) or "" for item in session.items}
        self._names = {item.nodeid: item.name for item in session.items}

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if report.failed:
            self.collect_errors.append(f"{report.nodeid}: {failure_message(report)}")

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        known = self._by_node.get(report.nodeid)
        if report.when == "teardown" and not (report.failed and known and known.outcome == "passed"):
            return
        if report.when == "setup" and report.passed:
            return
        outcome = report.outcome if report.when == "call" else ("skipped" if report.skipped else "error")
        self._by_node[report.nodeid] = Result(
            report.nodeid,
            self._names.get(report.nodeid, report.nodeid),
            self._exercises.get(report.nodeid, ""),
            outcome,
            "" if report.passed else failure_message(report),
            report.duration,
        )

    @property
    def results(self) -> list[Result]:
        return list(self._by_node.values())


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
        return _NOT_WRITTEN
    where = f" (at line {crash.lineno} of {crash.path})" if crash is not None and str(crash.path).startswith("<cell") else ""
    return text.strip() + where


def _pytest_args(exercises: Iterable[str], check_dirs: Iterable[Path]) -> list[str]:
    args = [str(d) for d in check_dirs]
    for exercise in exercises:
        args += ["--exercise", exercise]
    return args + [
        "-q",
        "--capture=no",
        "-p", "no:cacheprovider",
        "-p", "no:faulthandler",
        "-p", "no:timeout",
        "-p", "streamcourse.checking",
        "--import-mode=importlib",
        "--rootdir", str(CHECKS_DIR),
        "-c", str(CHECKS_DIR / "checks.ini"),
        "-W", "ignore::pytest.PytestUnraisableExceptionWarning",
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
        return bool(self.results) and all(r.outcome == "passed" for r in self.results)

    @property
    def ran_all(self) -> bool:
        """False when pytest broke off (an INTERNALERROR): the missing results would have said something."""
        return len(self.results) == len(self.collected)


def run_checks(
    namespace: Namespace | None = None,
    exercises: Iterable[str] = (),
    check_dirs: Iterable[Path] = (CHECKS_DIR,),
    extra_args: Iterable[str] = (),
    plugins: Iterable[object] = (),
    output: io.TextIOBase | None = None,
) -> Run:
    """Run checks in this process (in the calling thread) and return each outcome.

    ``plugins`` are extra pytest plugin objects (the grader streams each result
    with one); ``output``, when given, receives what the run prints instead of
    ``Run.output`` (the grader passes a capped writer, so a flood of prints
    cannot eat the memory).
    """
    collector = _Collector(namespace)
    out = io.StringIO()
    sink = out if output is None else output
    with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
        pytest.main(_pytest_args(exercises, check_dirs) + list(extra_args), plugins=[collector, *plugins])
    return Run(collector.collected, collector.results, collector.collect_errors, out.getvalue(), collector.exercises)


# --------------------------------------------------------------------------- check() in a notebook


@dataclass(repr=False)
class Report:
    exercise: str
    results: list[Result]
    problem: str = ""

    @property
    def passed(self) -> bool:
        return not self.problem and bool(self.results) and all(r.outcome == "passed" for r in self.results)

    def lines(self) -> list[tuple[bool, str, str]]:
        return [(r.outcome == "passed", r.name.removeprefix("test_").replace("_", " "), r.message) for r in self.results]

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


def check_report(exercise: str, namespace: Namespace | None = None, timeout: float = CHECK_TIMEOUT) -> Report:
    """Run one exercise's checks against ``namespace`` (default: the caller's kernel) in a worker thread."""
    namespace = namespace or kernel_namespace()
    # hypothesis keeps caches in ./.hypothesis: keep the learner's lab folder clean
    os.environ.setdefault("HYPOTHESIS_STORAGE_DIRECTORY", os.path.join(tempfile.gettempdir(), "streamcourse-hypothesis"))
    box: dict[str, Run] = {}
    worker = threading.Thread(
        target=lambda: box.setdefault("run", run_checks(namespace, [exercise])), daemon=True, name="streamcourse-check"
    )
    worker.start()
    worker.join(timeout)
    if worker.is_alive():
        return Report(exercise, [], f"the checks did not finish within {timeout:g} s — does your code loop forever or wait for something that never comes? Interrupt the kernel, fix it, and check again.")
    run = box["run"]
    if run.collect_errors:
        return Report(exercise, [], "the checks could not be loaded: " + "; ".join(run.collect_errors))
    if not run.collected:
        return Report(exercise, [], f"no checks for {exercise!r}; known exercises: {', '.join(run.exercises)}")
    if not run.ran_all:  # never report a partial run as a pass
        last = run.output.strip().splitlines()[-1:] or ["no output"]
        return Report(exercise, [], f"only {len(run.results)} of {len(run.collected)} checks ran before the check run stopped ({last[0]}). Run the check again; if it keeps happening, restart the kernel.")
    return Report(exercise, run.results)


def check(exercise: str) -> None:
    """Run the checks of ``exercise`` against this kernel's definitions and show what passed."""
    report = check_report(exercise)
    try:
        from IPython import get_ipython
        from IPython.display import display

        if get_ipython() is not None:
            display(report)
            return
    except ImportError:  # pragma: no cover
        pass
    print(report)
