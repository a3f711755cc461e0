"""Gradebook files an LMS imports: Canvas's gradebook CSV and Moodle's grading worksheet.

* **Canvas** ("Grades > Import", Canvas Instructor Guide "How do I import
  grades in the Gradebook?"): the columns of Canvas's own gradebook export,
  ``Student, ID, SIS User ID, SIS Login ID, Section`` (as written by
  ``gradebook_to_csv`` in instructure/canvas-lms), then one column per
  assignment, and a ``Points Possible`` row under the header. Canvas matches a
  row to a learner by ``ID`` (its user id, which Canvas downloads carry),
  ``SIS User ID`` or ``SIS Login ID``; a column named ``Title (assignment id)``
  fills that assignment, any other name creates a new one
  (``--assignment lab01="Lab 1 (4242)"``).
* **Moodle** (Assignment > "Upload grading worksheet", the offline grading
  feedback plugin): one file per lab with ``Identifier`` ("Participant <id>",
  the id Moodle downloads carry), ``Grade``, ``Last modified (grade)`` (all
  three required by ``importgradeslib.php`` in moodle/moodle; a grade changed in
  Moodle after that time is not overwritten) and ``Feedback comments``.

``--roster`` maps learners to LMS ids when the submissions came as folders: a
CSV with a ``learner`` column and any of ``name``, ``id``, ``sis_user_id``,
``sis_login_id``, ``section``, ``email``. Canvas's gradebook export and
Moodle's worksheet can be given as they are (their headers are understood;
rows are then matched by id, email, login or name).
"""

from __future__ import annotations

import csv
import datetime as dt
import re
from dataclasses import dataclass, replace
from html import escape
from pathlib import Path

from streamcourse.scoring import Grade, Identity
from streamcourse.untrusted import csv_text

__all__ = ["RosterError", "Person", "Roster", "load_roster", "apply_roster", "canvas_csv", "moodle_csv"]

_ALIASES = {
    "student": "name",
    "full name": "name",
    "identifier": "id",
    "email address": "email",
    "sis user id": "sis_user_id",
    "sis login id": "sis_login_id",
    "section": "section",
}
CANVAS_HEADER = ["Student", "ID", "SIS User ID", "SIS Login ID", "Section"]
MOODLE_HEADER = [
    "Identifier",
    "Full name",
    "Email address",
    "Grade",
    "Maximum Grade",
    "Last modified (grade)",
    "Feedback comments",
]


class RosterError(ValueError):
    """The roster cannot be read; the message says which line and what is missing."""


@dataclass(frozen=True)
class Person:
    learner: str = ""
    name: str = ""
    id: str = ""
    sis_user_id: str = ""
    sis_login_id: str = ""
    section: str = ""
    email: str = ""


class Roster:
    """Find a grade's learner in the roster by learner name, LMS id, email, login or display name."""

    def __init__(self, people: list[Person]) -> None:
        self._index: dict[tuple[str, str], Person | None] = {}
        for person in people:
            for key in self._keys(person):
                self._index[key] = None if key in self._index else person  # an ambiguous key matches nobody

    @staticmethod
    def _keys(p: Person) -> list[tuple[str, str]]:
        pairs = [
            ("learner", p.learner),
            ("id", p.id),
            ("email", p.email.casefold()),
            ("login", p.sis_login_id),
            ("name", p.name.casefold()),
        ]
        return [pair for pair in pairs if pair[1]]

    def find(self, grade: Grade) -> Person:
        who = grade.identity
        for key in [
            ("learner", grade.learner),
            ("id", who.lms_id),
            ("email", who.email.casefold()),
            ("login", grade.learner),
            ("name", who.display.casefold()),
            ("name", grade.learner.casefold()),
        ]:
            person = self._index.get(key) if key[1] else None
            if person:
                return person
        return Person()


def _person(row: dict[str, str]) -> Person:
    fields = {_ALIASES.get(k.strip().lower(), k.strip().lower()): (v or "").strip() for k, v in row.items() if k}
    if fields.get("id", "").lower().startswith("participant"):
        fields["id"] = re.sub(r"\D", "", fields["id"])
    return Person(**{k: fields.get(k, "") for k in Person.__dataclass_fields__})


def load_roster(path: Path) -> Roster:
    try:
        with open(path, newline="", encoding="utf-8-sig") as file:
            rows = list(csv.DictReader(file))
    except OSError as exc:
        raise RosterError(f"--roster {path}: {exc.strerror or exc}") from None
    people = [_person(r) for r in rows if (r.get("Student") or "").strip() != "Points Possible"]
    for number, person in enumerate(people, start=2):
        if not (person.learner or person.id or person.email or person.sis_login_id or person.name):
            raise RosterError(f"--roster {path}, line {number}: a row needs a 'learner', 'id', 'email' or 'name'")
    return Roster(people)


def apply_roster(grades: list[Grade], roster: Roster) -> None:
    """Fill each grade's identity from its roster row (kept in grades.json, so merged shards need no roster)."""
    for grade in grades:
        person = roster.find(grade)
        who = grade.identity
        grade.identity = replace(
            who,
            display=person.name or who.display,
            email=person.email or who.email,
            roster_id=person.id,
            sis_user_id=person.sis_user_id,
            sis_login_id=person.sis_login_id,
            section=person.section,
        )


def _labs(grades: list[Grade]) -> list[str]:
    return sorted({g.lab for g in grades if g.exercises})


def _canvas_id(who: Identity) -> str:
    own = who.lms_id if who.lms == "canvas" and who.lms_id.isdigit() else ""  # anonymous ids are not user ids
    return who.roster_id or own


def canvas_csv(grades: list[Grade], titles: dict[str, str]) -> tuple[str, list[str]]:
    """Canvas's import CSV for every graded lab, and a warning per learner Canvas cannot match."""
    graded = [g for g in grades if g.exercises]
    labs = _labs(graded)
    maximum = {g.lab: g.max_points for g in graded}
    rows: list[list[object]] = [["Points Possible", "", "", "", "", *[maximum[lab] for lab in labs]]]
    warnings = []
    for learner in sorted({g.learner for g in graded}):
        mine = [g for g in graded if g.learner == learner]
        who = mine[0].identity
        if not (_canvas_id(who) or who.sis_user_id or who.sis_login_id):
            warnings.append(f"canvas.csv: {learner} has no Canvas ID, SIS User ID or SIS Login ID: give --roster")
        points = {g.lab: g.points for g in mine}
        rows.append(
            [
                who.display or learner,
                _canvas_id(who),
                who.sis_user_id,
                who.sis_login_id,
                who.section,
                *[points.get(lab, "") for lab in labs],
            ]
        )
    return csv_text(CANVAS_HEADER + [titles.get(lab, lab) for lab in labs], rows), warnings


def _comment(grade: Grade) -> str:
    late = f" Late policy: {grade.late.note}" if grade.late else ""
    return escape(f"{grade.points:g} / {grade.max_points:g} points from the autograder.{late}")


def moodle_csv(grades: list[Grade], graded_at: dt.datetime) -> tuple[dict[str, str], list[str]]:
    """One grading worksheet per lab (file name -> text), and a warning per learner without a participant id."""
    sheets: dict[str, str] = {}
    warnings = []
    stamp = graded_at.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    for lab in _labs(grades):
        rows = []
        for grade in (g for g in grades if g.lab == lab and g.exercises):
            who = grade.identity
            participant = who.roster_id or (who.lms_id if who.lms == "moodle" else "")
            if not participant:
                warnings.append(f"moodle-{lab}.csv: {grade.learner} has no Moodle participant id: give --roster")
                continue
            rows.append(
                [
                    f"Participant {participant}",
                    who.display or grade.learner,
                    who.email,
                    grade.points,
                    grade.max_points,
                    stamp,
                    _comment(grade),
                ]
            )
        sheets[f"moodle-{lab}.csv"] = csv_text(MOODLE_HEADER, rows)
    return sheets, warnings
