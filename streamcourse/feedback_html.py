"""The learner's feedback as one HTML page per lab: what passed, what failed and why, points and time.

Everything on the page that a learner could have influenced (their name, the
lab name from their metadata, a failure message quoting their output) is
escaped with ``html.escape``; the page has no script and a Content Security
Policy that forbids loading anything, so even a mistake here cannot run code
in the browser of whoever opens it. Hidden checks show their message only,
like in the Markdown feedback.
"""

from __future__ import annotations

from html import escape

from streamcourse import untrusted
from streamcourse.feedback import display_name, file_label
from streamcourse.results import PASSED
from streamcourse.scoring import ExerciseGrade, Grade

__all__ = ["page"]

_STYLE = """
body{font:15px/1.45 system-ui,sans-serif;max-width:52em;margin:2em auto;padding:0 1em;color:#1f2328}
h1{font-size:1.5em}h2{font-size:1.15em;margin-top:1.6em}
table{border-collapse:collapse;width:100%}td,th{padding:.35em .5em;border-bottom:1px solid #d0d7de;text-align:left;vertical-align:top}
.ok{color:#1a7f37}.no{color:#cf222e}.note{background:#fff8c5;padding:.5em .8em;border-radius:6px}
.t{white-space:nowrap;color:#57606a;text-align:right}.msg{color:#cf222e}
"""


def _text(value: object) -> str:
    return escape(untrusted.clean(value), quote=True)


def _check_rows(exercise: ExerciseGrade) -> str:
    rows = []
    for check in exercise.checks:
        ok = check.status == PASSED
        mark = '<span class="ok">✔</span>' if ok else '<span class="no">✘</span>'
        words = (
            ""
            if ok
            else f'<div class="msg">{_text(check.status)}'
            + (f": {_text(check.message)}" if check.message else "")
            + "</div>"
        )
        rows.append(
            f"<tr><td>{mark}</td><td>{_text(display_name(check))}{words}</td>"
            f'<td class="t">{check.seconds:.2f} s</td></tr>'
        )
    return "".join(rows)


def _exercise(exercise: ExerciseGrade) -> str:
    passed = sum(c.status == PASSED for c in exercise.checks)
    return (
        f"<h2>{_text(exercise.exercise)} — {exercise.points:g} / {exercise.max_points:g} points</h2>"
        f"<p>{passed}/{len(exercise.checks)} checks passed</p>"
        f'<table><tr><th></th><th>check</th><th class="t">time</th></tr>{_check_rows(exercise)}</table>'
    )


def _notes(grade: Grade) -> str:
    parts = []
    if grade.problem:
        parts.append(f'<p class="note"><b>Your notebook could not be graded:</b> {_text(grade.problem)}</p>')
    if grade.late:
        parts.append(f'<p class="note"><b>Late policy:</b> {_text(grade.late.note)}</p>')
    cells = [c for c in grade.cells if c.status != PASSED]
    if cells:
        items = "".join(f"<li>{_text(c.error or f'cell {c.index}: {c.status}')}</li>" for c in cells)
        parts.append(
            "<h2>While your notebook ran</h2><p>Your notebook runs top to bottom before the checks; a cell "
            f"that fails or hangs is skipped and the rest still counts.</p><ul>{items}</ul>"
        )
    return "".join(parts)


def page(grade: Grade) -> str:
    """The whole page, self-contained (inline style, no script, nothing loaded)."""
    title = f"{_text(grade.lab)} — {grade.points:g} / {grade.max_points:g} points"
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">"
        f"<title>{title}</title><style>{_STYLE}</style></head><body>"
        f"<h1>{title}</h1><p>Learner: {_text(grade.learner)} · graded: <code>{_text(file_label(grade.path))}</code></p>"
        f"{_notes(grade)}{''.join(_exercise(e) for e in grade.exercises)}</body></html>\n"
    )
