"""The learner's feedback for one lab, in Markdown, in the words ``check()`` uses.

What passed, what failed with the check's own message, the points of each
exercise, what went wrong while the notebook ran and what the late policy did.
Flags are for the instructor and never appear here. Hidden checks show only
their message (``streamcourse.results.hide``).
"""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Any

from streamcourse import untrusted
from streamcourse.results import PASSED
from streamcourse.scoring import Grade

__all__ = ["file_label", "display_name", "feedback_text"]


def file_label(origin: str) -> str:
    """The notebook's own file name, from a path or ``archive.zip:member``."""
    return PurePosixPath(origin.rsplit(":", 1)[-1].replace("\\", "/")).name or origin


def display_name(check: Any) -> str:
    """A check as the learner reads it: ``test_batched_is_lazy[x]`` -> ``batched is lazy``."""
    name = str(check.name).split("[")[0].removeprefix("test_").replace("_", " ")
    return f"(hidden) {name}" if check.hidden else name


def _mark(status: str) -> str:
    return "✔" if status == PASSED else "✘"


def _head(grade: Grade) -> list[str]:
    lines = [
        f"# {grade.lab} — {grade.points:g} / {grade.max_points:g} points",
        "",
        f"Graded: `{file_label(grade.path)}`",
        "",
    ]
    if grade.problem:
        lines += [f"**Your notebook could not be graded:** {grade.problem}", ""]
    if grade.late:
        lines += [f"**Late policy:** {grade.late.note}", ""]
    problems = [c for c in grade.cells if c.status != PASSED]
    if problems:
        lines += [
            "## While your notebook ran",
            "",
            "Your notebook runs top to bottom before the checks; a cell that fails or hangs is skipped and the rest still counts.",
            "",
        ]
        lines += [f"- {c.error or f'cell {c.index}: {c.status}'}" for c in problems]
        lines.append("")
    return lines


def feedback_text(grade: Grade) -> str:
    """The learner's feedback for one lab, in the words check() uses (Markdown)."""
    lines = _head(grade)
    for exercise in grade.exercises:
        passed = sum(c.status == PASSED for c in exercise.checks)
        lines += [f"## {exercise.exercise} — {exercise.points:g} / {exercise.max_points:g} points", ""]
        well_done = " — well done!" if exercise.checks and passed == len(exercise.checks) else ""
        lines += [f"{passed}/{len(exercise.checks)} checks passed{well_done}", ""]
        for check in exercise.checks:
            line = f"- {_mark(check.status)} {display_name(check)}"
            if check.status != PASSED:
                message = check.message.replace("\n", " ")
                line += f" — *{check.status}*" + (f": {message}" if message else "")
            lines.append(line)
        lines.append("")
    return untrusted.clean("\n".join(lines).rstrip() + "\n", keep_newlines=True)
