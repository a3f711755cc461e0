"""Late penalties: ``--due``, ``--late-penalty``, ``--late-max`` and per-learner ``--extensions``.

The penalty is a share of the lab's points per *started* period after the due
time (``10%/day``: 1 minute late costs 10%, 25 hours 20%), capped by
``--late-max``. It is applied from the submission time the input carries:

* Gradescope export: each submission's ``:created_at:``, the real submission time;
* plain zip: each entry's timestamp, i.e. when the notebook was last written on
  the machine that made the zip, in that machine's local time (zip has no zone)
  and to 2 seconds;
* Canvas: no time at all (the entries are stamped when the zip is made), only
  Canvas's ``LATE`` mark against its own due date: a marked submission is
  charged one period, the least it can be late, unless the learner has an
  extension here;
* Moodle and folders: no time either, so no penalty, and the feedback says why.

Every grade the policy looks at gets a ``Late`` note that the feedback shows,
on time or not.
"""

from __future__ import annotations

import csv
import datetime as dt
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

from streamcourse.intake import SubmissionFile
from streamcourse.scoring import Late

__all__ = ["PolicyError", "LatePolicy", "parse_due", "parse_penalty", "parse_share", "load_extensions", "assess"]

_PERIODS = {"hour": dt.timedelta(hours=1), "day": dt.timedelta(days=1), "week": dt.timedelta(weeks=1)}


class PolicyError(ValueError):
    """A late-policy option that cannot be read; the message shows the expected form."""


@dataclass(frozen=True)
class LatePolicy:
    due: dt.datetime
    rate: float = 0.0  # share of the lab's points per started period
    period: dt.timedelta = dt.timedelta(days=1)
    cap: float = 1.0
    extensions: dict[str, dt.datetime] = field(default_factory=dict)  # learner, LMS id, name or email -> due

    @property
    def period_name(self) -> str:
        return next((name for name, length in _PERIODS.items() if length == self.period), str(self.period))


def parse_due(text: str) -> dt.datetime:
    """ISO 8601 (``2025-03-01T23:59+01:00``); without a zone, this machine's local time."""
    try:
        due = dt.datetime.fromisoformat(text.strip())
    except ValueError:
        raise PolicyError(
            f"--due {text!r}: give a date and time like 2025-03-01T23:59 or 2025-03-01T23:59+01:00"
        ) from None
    return due if due.tzinfo else due.astimezone()


def parse_share(text: str, option: str) -> float:
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*%\s*", text)
    if not match or float(match[1]) > 100:
        raise PolicyError(f"{option} {text!r}: give a percentage like 10%")
    return float(match[1]) / 100


def parse_penalty(text: str) -> tuple[float, dt.timedelta]:
    """``10%/day`` (or ``/hour``, ``/week``) -> (0.1, one day)."""
    share, _, period = text.partition("/")
    if period.strip() not in _PERIODS:
        raise PolicyError(f"--late-penalty {text!r}: give a share per period like 10%/day (periods: hour, day, week)")
    return parse_share(share, "--late-penalty"), _PERIODS[period.strip()]


def load_extensions(path: Path, due: dt.datetime) -> dict[str, dt.datetime]:
    """A CSV with a ``learner`` column and either ``due`` (a new due time) or ``days`` (added to --due)."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as file:
            rows = list(csv.DictReader(file))
    except OSError as exc:
        raise PolicyError(f"--extensions {path}: {exc.strerror or exc}") from None
    extensions = {}
    for number, row in enumerate(rows, start=2):
        learner, new_due, days = ((row.get(k) or "").strip() for k in ("learner", "due", "days"))
        if not learner or not (new_due or days):
            raise PolicyError(f"--extensions {path}, line {number}: each row needs 'learner' and 'due' or 'days'")
        try:
            extensions[learner] = parse_due(new_due) if new_due else due + dt.timedelta(days=float(days))
        except (PolicyError, ValueError):
            raise PolicyError(
                f"--extensions {path}, line {number}: {new_due or days!r} is not a time or a number of days"
            ) from None
    return extensions


def _when(stamp: dt.datetime, zone: dt.tzinfo | None) -> str:
    return stamp.astimezone(zone).strftime("%Y-%m-%d %H:%M %Z").strip()


def _duration(delta: dt.timedelta) -> str:
    minutes = math.ceil(delta.total_seconds() / 60)
    days, rest = divmod(minutes, 24 * 60)
    hours, minutes = divmod(rest, 60)
    parts = [f"{days} d" if days else "", f"{hours} h" if hours else "", f"{minutes} min" if minutes else ""]
    return " ".join(p for p in parts if p) or "0 min"


def _extension(policy: LatePolicy, sub: SubmissionFile) -> dt.datetime | None:
    keys = (sub.learner, sub.lms_id, sub.display, sub.email)
    return next((policy.extensions[k] for k in keys if k and k in policy.extensions), None)


def _charge(policy: LatePolicy, periods: int, max_points: float) -> tuple[float, str]:
    share = min(policy.cap, policy.rate * periods)
    penalty = round(share * max_points, 2)
    plural = "s" if periods != 1 else ""
    capped = f" (capped at {policy.cap:.0%})" if share < policy.rate * periods else ""
    return penalty, (
        f"{periods} started {policy.period_name}{plural} late × {policy.rate:.0%} = {share:.0%}{capped} "
        f"of {max_points:g} points: −{penalty:g} point{'s' if penalty != 1 else ''}"
    )


def assess(policy: LatePolicy, sub: SubmissionFile, max_points: float) -> Late:
    """What the policy does to one submission, and why, in the feedback's words."""
    zone = policy.due.tzinfo
    extension = _extension(policy, sub)
    due = extension or policy.due
    due_words = f"due {_when(due, zone)}" + (" (your extension)" if extension else "")
    if sub.submitted_at is not None:
        late_by = sub.submitted_at - due
        when = f"Submitted {_when(sub.submitted_at, zone)} ({sub.time_source}), {due_words}"
        if late_by <= dt.timedelta(0):
            return Late(0.0, f"{when}: on time, no penalty.")
        penalty, how = _charge(policy, math.ceil(late_by / policy.period), max_points)
        return Late(penalty, f"{when}: {_duration(late_by)} late; {how}.")
    if sub.lms_late and extension:
        return Late(
            0.0,
            f"Canvas marked this submission late, but you have an extension ({due_words}) and the "
            "Canvas download holds no submission time to compare: no penalty.",
        )
    if sub.lms_late:
        penalty, how = _charge(policy, 1, max_points)
        return Late(
            penalty,
            "Canvas marked this submission late; its download holds no submission time, so it is "
            f"charged as one {policy.period_name} late, the least it can be: {how}.",
        )
    if sub.lms == "canvas":
        return Late(0.0, "Canvas did not mark this submission late: no penalty.")
    source = {"canvas": "Canvas", "moodle": "Moodle"}.get(sub.lms, "")
    where = (
        f"the {source} download carries no submission time"
        if source
        else "no submission time is known for a notebook in a folder"
    )
    return Late(0.0, f"No late policy applied: {where}.")
