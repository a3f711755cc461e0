"""Lesson pacing: the pauses that make streaming visible, scaled for the test suite.

A lesson sleeps ``pace(0.3)`` between chunks so a learner can watch them arrive.
Under ``make test`` the environment sets ``STREAMCOURSE_SPEED`` (say 20) and the
same notebook runs twenty times faster without changing a line.
"""

from __future__ import annotations

import os

__all__ = ["speed", "pace", "CHECKING_SPEED", "ENV"]


ENV = "STREAMCOURSE_SPEED"

#: The speed notebooks run at when they are tested, graded or validated: their
#: demo cells pace themselves for people, and those pauses prove nothing there.
CHECKING_SPEED = "20"


def speed() -> float:
    """How many times faster than real time lessons run (``STREAMCOURSE_SPEED``, default 1)."""
    raw = os.environ.get(ENV, "1")
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"STREAMCOURSE_SPEED must be a number such as 1 or 20, not {raw!r}") from None
    if value <= 0:
        raise ValueError(f"STREAMCOURSE_SPEED must be positive, not {raw!r}")
    return value


def pace(seconds: float) -> float:
    """``seconds`` of lesson time, scaled by :func:`speed`."""
    return seconds / speed()
