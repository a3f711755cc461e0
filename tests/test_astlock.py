"""Importing streamcourse makes ``ast.parse`` safe to call from several threads.

Python 3.11 shares one depth counter between threads while it builds a syntax
tree; a server thread that formats an error's traceback (which parses the
source line to place the ``^^^``) at the moment pytest parses a check file to
report a failure can make one of them raise ``SystemError``. That once cost a
check its result in CI.
"""

from __future__ import annotations

import ast
import os
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path

import pytest

import streamcourse

# A big, real source file to parse: the race needs parses that take a while.
SOURCE = "\n".join(
    (Path(streamcourse.__file__).parent / name).read_text(encoding="utf-8")
    for name in ("checking.py", "peer.py", "checker.py")
)


class Litter:
    """Garbage in a cycle with a finalizer: the collector runs Python code, so threads switch mid-parse."""

    def __del__(self) -> None:
        time.sleep(0)


def ipython_cell_parse() -> Callable[[str], object]:
    """How a kernel parses each cell it runs (IPython is imported before the learner imports streamcourse)."""
    from IPython.core.compilerop import CachingCompiler

    from streamcourse import astlock

    astlock.install()  # what `import streamcourse` does in a kernel, where IPython came first
    return CachingCompiler().ast_parse


@pytest.mark.parametrize("parser", ["ast.parse", "a kernel's cell parse"])
def test_parsing_while_other_threads_format_tracebacks_never_raises_system_error(parser: str) -> None:
    parse = ast.parse if parser == "ast.parse" else ipython_cell_parse()
    stop = threading.Event()

    def log_errors() -> None:  # what uvicorn does when an app raises
        while not stop.is_set():
            try:
                {}["missing"]
            except KeyError:
                traceback.format_exc()

    def litter() -> None:
        while not stop.is_set():
            item = Litter()
            item.me = item
            time.sleep(0)

    threads = [threading.Thread(target=f, daemon=True) for f in (log_errors, litter)]
    for thread in threads:
        thread.start()
    errors, parses, started = [], 0, time.monotonic()
    try:
        while time.monotonic() - started < 3:  # unlocked, Python 3.11.7 failed 22 of 35 parses here
            parses += 1
            try:
                parse(SOURCE)
            except SystemError as exc:
                errors.append(str(exc))
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    assert parses > 5
    assert not errors, f"{len(errors)} of {parses} parses failed: {errors[0]}"


def test_a_child_forked_while_another_thread_parses_can_still_parse() -> None:
    """The grader forks one child per submission: a lock held at that moment must not stay held there."""
    from streamcourse import astlock

    holding, release = threading.Event(), threading.Event()

    def parse_slowly() -> None:
        with astlock._lock:  # as a thread in the middle of ast.parse would
            holding.set()
            release.wait(5)

    thread = threading.Thread(target=parse_slowly)
    thread.start()
    holding.wait(5)
    pid = os.fork()
    if pid == 0:  # the child: parse, and report by exit code (0 only when the parse returned)
        parsed = False
        try:
            parsed = isinstance(ast.parse("x = 1"), ast.Module)
        finally:
            os._exit(0 if parsed else 1)
    release.set()
    thread.join()
    deadline = time.monotonic() + 5
    while (done := os.waitpid(pid, os.WNOHANG))[0] == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    if done[0] == 0:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    assert done[0] == pid, "the forked child hung in ast.parse: it inherited a held lock"
    assert os.waitstatus_to_exitcode(done[1]) == 0, "the forked child's ast.parse raised"


@pytest.mark.parametrize(
    ("version", "racy"),
    [
        ((3, 10, 14), False),
        ((3, 11, 0), True),
        ((3, 11, 7), True),
        ((3, 11, 8), False),
        ((3, 12, 0), True),
        ((3, 12, 1), True),
        ((3, 12, 2), False),
        ((3, 13, 0), False),
        ((3, 14, 1), False),
    ],
)
def test_only_the_versions_with_the_race_need_the_lock(version: tuple[int, int, int], racy: bool) -> None:
    from streamcourse import astlock

    assert astlock.has_race(version) is racy


def test_ast_parse_is_locked_exactly_on_a_version_with_the_race() -> None:
    from streamcourse import astlock

    locked = getattr(ast.parse, "_streamcourse_locked", False)
    assert locked is astlock.has_race(tuple(sys.version_info)), f"Python {sys.version.split()[0]}"
