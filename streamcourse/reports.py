"""The reports of one graded class: grades.csv, grades.json, feedback per learner and lab, the terminal summary.

* ``grades.csv``: one row per learner, lab and exercise (plus a ``late penalty``
  row with negative points when the late policy took some off).
* ``grades.json``: everything, including each failure message, flag and what
  the intake left out; ``streamcourse.shards`` rebuilds grades from it.
* ``feedback/<learner>/<lab>.md`` and ``.html``: for the learner, in the words
  ``check()`` uses (``streamcourse.feedback`` and ``streamcourse.feedback_html``).
* the summary table, safe for the instructor's terminal.

Everything learner-controlled goes through ``streamcourse.untrusted`` on the way
out, and every file through ``streamcourse.outdir`` (never through a link).
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from streamcourse import feedback_html, gradebook, untrusted
from streamcourse.feedback import feedback_text
from streamcourse.outdir import ReportDir
from streamcourse.results import CRASHED, PASSED, TIMED_OUT
from streamcourse.scoring import Grade, to_json

__all__ = ["grades_csv", "grades_json", "feedback_paths", "write_reports", "summary_table"]

CSV_HEADER = ["learner", "lab", "exercise", "points", "max_points"]
LATE_ROW = "late penalty"


def grades_csv(grades: list[Grade]) -> str:
    rows: list[list[object]] = []
    for grade in grades:
        rows += [[grade.learner, grade.lab, e.exercise, e.points, e.max_points] for e in grade.exercises]
        if grade.late and grade.late.penalty:
            rows.append([grade.learner, grade.lab, LATE_ROW, -grade.late.penalty, 0])
    return untrusted.csv_text(CSV_HEADER, rows)


def grades_json(grades: list[Grade], meta: dict[str, Any]) -> str:
    return json.dumps({**meta, "submissions": [to_json(g) for g in grades]}, indent=2, ensure_ascii=False) + "\n"


def feedback_paths(grade: Grade) -> tuple[str, str]:
    folder = f"feedback/{untrusted.learner_name(grade.learner)}/{untrusted.learner_name(grade.lab)}"
    return f"{folder}.md", f"{folder}.html"


def _gradebooks(
    grades: list[Grade], config: dict[str, Any], graded_at: dt.datetime
) -> tuple[dict[str, str], list[str]]:
    files: dict[str, str] = {}
    warnings: list[str] = []
    if "canvas" in config.get("gradebooks", []):
        files["canvas.csv"], warnings = gradebook.canvas_csv(grades, config.get("assignments", {}))
    if "moodle" in config.get("gradebooks", []):
        sheets, more = gradebook.moodle_csv(grades, graded_at)
        files.update(sheets)
        warnings += more
    return files, warnings


def write_reports(grades: list[Grade], reports: ReportDir, meta: dict[str, Any]) -> list[str]:
    """Every report of ``grades`` into ``reports`` (committed by the caller); returns the warnings it added.

    ``meta`` goes into grades.json as it is, except that warnings and intake
    notes are sorted and deduplicated: the same class graded in one run or in
    shards then gives the same files.
    """
    graded_at = dt.datetime.fromisoformat(meta["graded_at"])
    files, added = _gradebooks(grades, meta.get("config", {}), graded_at)
    meta = {
        **meta,
        "warnings": sorted(set(meta.get("warnings", [])) | set(added)),
        "intake": sorted(set(meta.get("intake", []))),
    }
    reports.write("grades.csv", grades_csv(grades))
    reports.write("grades.json", grades_json(grades, meta))
    for grade in grades:
        markdown, page = feedback_paths(grade)
        reports.write(markdown, feedback_text(grade))
        reports.write(page, feedback_html.page(grade))
    for name, text in files.items():
        reports.write(f"gradebook/{name}", text)
    return added


def summary_table(grades: list[Grade]) -> str:
    """The class at a glance, for the terminal: every learner-controlled cell cleaned of escapes."""
    rows = [("learner", "lab", "points", "of", "not passed", "flags", "note")]
    for g in grades:
        failing = sum(c.status != PASSED for e in g.exercises for c in e.checks)
        note = g.problem or next((c.error for c in g.cells if c.status in (TIMED_OUT, CRASHED)), "")
        rows.append(
            (
                untrusted.terminal(g.learner)[:40],
                untrusted.terminal(g.lab)[:20],
                f"{g.points:g}",
                f"{g.max_points:g}",
                str(failing),
                str(len(g.flags)),
                untrusted.terminal(note)[:60],
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
