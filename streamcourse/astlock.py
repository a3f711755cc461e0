"""One ``ast.parse`` at a time in this process.

CPython 3.11 counts the depth of the syntax tree it is building in one
counter that all threads share. When two threads parse at once, one of them
can fail with ``SystemError: AST constructor recursion depth mismatch``
(CPython issue 106905, pytest issue 10763; ``tests/test_astlock.py`` shows it). The course makes that likely: the
servers run in threads, and Python 3.11 parses source lines to draw the ``^^^``
under an error whenever a server logs an exception, while pytest parses the
check files to report a failure. Without this lock a check that fails at the
same moment as the learner's server logs an error can crash the check run and
lose its result.
"""

from __future__ import annotations

import ast
import os
import threading
from typing import Any

_lock = threading.RLock()  # re-entrant: a finalizer run during a parse may parse too


def _new_lock_in_child() -> None:
    """A child forked while another thread was parsing would inherit the lock held forever."""
    global _lock
    _lock = threading.RLock()


os.register_at_fork(after_in_child=_new_lock_in_child)


def install() -> None:
    """Wrap ``ast.parse`` in a process-wide lock, once."""
    if getattr(ast.parse, "_streamcourse_locked", False):
        return
    parse = ast.parse

    def locked_parse(*args: Any, **kwargs: Any) -> Any:
        with _lock:
            return parse(*args, **kwargs)

    locked_parse._streamcourse_locked = True  # type: ignore[attr-defined]
    locked_parse.__doc__ = parse.__doc__
    ast.parse = locked_parse
