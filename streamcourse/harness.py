"""Small builders that run BESIDE the learner's code: apps that wrap a learner's function.

A check must not build its own route around a learner's function: when grading,
the check runs in a trusted process and the learner's code in a sandbox, and a
route in the check's process would run the learner's code there. A check asks
for one of these builders instead, through ``submission.build(harness.x, ...)``,
which runs it wherever the learner's code runs. Each builder takes only what can
cross the grader's channel (plain data, paths, the check's own iterators and
callables, the learner's own values) and returns an ASGI app for ``serve()``.
Nothing a builder computes is trusted: checks judge only what they observe.
"""

from __future__ import annotations

from collections.abc import Iterator

__all__ = ["numbered_rows", "release_free_memory"]


def numbered_rows(count: int, width: int) -> Iterator[str]:
    """``count`` CSV-like rows ``"<i>,xxx…\\n"`` made one at a time where the learner's code runs.

    A memory check feeds these to the learner's code instead of rows of its own:
    rows that came one by one across the grader's channel would take longer than
    the check, and the memory measured must be the learner's code's alone.
    """
    filler = "x" * width
    for i in range(count):
        yield f"{i},{filler}\n"


def release_free_memory() -> None:
    """Give memory the process freed back to the system, so a peak measured from outside counts new memory only.

    Freed memory a process keeps looks resident; new allocations reuse it without
    raising the peak. ``malloc_trim`` (glibc) returns it. Nothing here is trusted:
    code that skips it only makes its own measurement noisier.
    """
    import ctypes
    import gc

    gc.collect()
    try:
        ctypes.CDLL(None).malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: the measurement is rougher, not wrong
        pass
