"""One parse into a syntax tree at a time in this process.

CPython 3.11 counts the depth of the syntax tree it is building in one
counter that all threads share. When two threads parse at once, one of them
can fail with ``SystemError: AST constructor recursion depth mismatch``
(CPython issue 106905, pytest issue 10763; ``tests/test_astlock.py`` shows it).

The course makes that likely: its servers run in threads, and Python 3.11
parses source lines to draw the ``^^^`` under an error whenever a server logs
an exception, while in the main thread pytest parses a check file to report a
failure, or IPython parses the cell the learner just ran. Without this lock a
check could crash and lose its result, or a cell fail for no reason of its own.

Only the versions with the race get the lock: the shared counter came with
3.11.0 (gh-95185) and went in 3.11.8 and 3.12.2 (python/cpython#113035, one
counter per parse; backported as #113476 and #113472); 3.13 never had it.
"""

from __future__ import annotations

import ast
import functools
import os
import sys
import threading
from collections.abc import Callable
from typing import Any

_lock = threading.RLock()  # re-entrant: a finalizer run during a parse may parse too


def _new_lock_in_child() -> None:
    """A child forked while another thread was parsing would inherit the lock held forever."""
    global _lock
    _lock = threading.RLock()


os.register_at_fork(after_in_child=_new_lock_in_child)


def _locked(parse: Callable[..., Any]) -> Callable[..., Any]:
    if getattr(parse, "_streamcourse_locked", False):
        return parse

    @functools.wraps(parse)
    def locked_parse(*args: Any, **kwargs: Any) -> Any:
        with _lock:
            return parse(*args, **kwargs)

    locked_parse._streamcourse_locked = True  # type: ignore[attr-defined]
    return locked_parse


def has_race(version: tuple[int, ...]) -> bool:
    """Whether this CPython version shares one AST depth counter between threads."""
    return (3, 11) <= version[:3] < (3, 11, 8) or (3, 12) <= version[:3] < (3, 12, 2)


def install() -> None:
    """Put ``ast.parse`` behind a process-wide lock, and IPython's own parse of each cell in a kernel."""
    if not has_race(sys.version_info[:3]):
        return
    ast.parse = _locked(ast.parse)
    compilerop = sys.modules.get("IPython.core.compilerop")  # imported already in a kernel, never imported here
    if compilerop is not None:
        compilerop.CachingCompiler.ast_parse = _locked(compilerop.CachingCompiler.ast_parse)
