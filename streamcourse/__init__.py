"""Support package for the course *Streaming with FastAPI*.

Learners import what a notebook needs from here in its first cell::

    from streamcourse import serve, check, pace
"""

from typing import Any

from streamcourse import astlock
from streamcourse.pacing import pace

__all__ = ["serve", "pace", "check"]
__version__ = "0.1.0"

astlock.install()  # before any server thread starts: see astlock's docstring


def __getattr__(name: str) -> Any:
    """``serve`` loads uvicorn on first use: the grader's runner starts without it."""
    if name == "serve":
        from streamcourse.server import serve

        return serve
    raise AttributeError(f"module 'streamcourse' has no attribute {name!r}")


def check(exercise: str) -> None:  # imported lazily: pytest is only needed when checking
    """Run the checks of one exercise against this kernel's definitions and show the result."""
    from streamcourse.checking import check as _check

    return _check(exercise)
