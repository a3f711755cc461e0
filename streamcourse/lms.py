"""How each LMS names the files of its "download all submissions" zip, and what it tells about the learner.

Each parser takes one member name of the archive and returns who submitted it
(``Owner``) or ``None`` when the name is not in that LMS's pattern. Where the
pattern comes from (read in each LMS's own source, because their help pages
show examples, not rules):

* **Canvas** — ``lib/content_zipper.rb`` in instructure/canvas-lms
  (``get_filename``, ``add_upload_submission``, ``sanitize_user_name``):
  ``<sortable name, lower case, non-word characters removed>[_LATE]_<user id>_<attachment id>_<file name>``;
  with anonymous grading the name is left out and the id is ``anon_<anonymous id>``.
  ``LATE`` is Canvas's own verdict against its due date and overrides. The
  entries' timestamps are when the zip was made (rubyzip's
  ``get_output_stream`` is called without a time): the zip carries no submission time.
* **Moodle** — ``mod/assign/locallib.php`` in moodle/moodle (``download_submissions``):
  ``<full name, '_' turned into spaces>_<participant id>_assignsubmission_file_/<file>``
  with "Download submissions in folders" (the default since Moodle 3.1), else
  ``..._assignsubmission_file_<file>``; "Participant" replaces the name under blind
  marking, and ``<group>-`` prefixes it for team submissions. The participant id
  is what Moodle's grading worksheet calls "Participant <id>". Entries are
  streamed with ``add_file_from_stored_file`` (``files/classes/local/archive_writer/zip_writer.php``),
  which gives ZipStream no time, so their timestamps are when the zip was made:
  no submission time either.
* **Gradescope** — "Export Submissions" gives ``submission_<id>/<files>`` folders
  and a ``submission_metadata.yml`` keyed by those folder names, each with
  ``:submitters:`` (``:name:``, ``:sid:``, ``:email:``) and ``:created_at:``, the
  submission time. Gradescope does not document this layout; it is the one
  exports have and other tools read (e.g. rhattark/SER594 ``hw2q3``).
  (The autograder container's own layout *is* documented: see ``streamcourse.gradescope``.)
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

__all__ = ["Owner", "canvas_owner", "moodle_owner", "gradescope_owners", "GRADESCOPE_METADATA"]

GRADESCOPE_METADATA = "submission_metadata.yml"
_CANVAS = re.compile(
    r"^(?:(?P<name>[^/]+?)_)?(?:(?P<late>LATE)_)?(?P<user>\d+|anon_[A-Za-z0-9]+)_(?P<attachment>\d+)_(?P<file>[^/]+)$"
)
_MOODLE = re.compile(
    r"^(?:.*/)?(?P<name>[^/_]+)_(?P<participant>\d+)_assignsubmission_file_?(?:/(?P<path>.+)|(?P<flat>[^/]+))$"
)
_GRADESCOPE_FOLDER = re.compile(r"(?:^|/)(?P<folder>submission_\d+)/")


@dataclass(frozen=True)
class Owner:
    """Who submitted a file, in the LMS's words."""

    lms: str
    name: str  # the LMS's name for them ("smithbob", "Bob Smith")
    lms_id: str  # Canvas user id, Moodle participant id, Gradescope SID (or submission id)
    email: str = ""
    late: bool = False  # the LMS marked it late (Canvas)
    submitted_at: dt.datetime | None = None
    file: str = ""  # the file name the learner uploaded


def canvas_owner(member: str) -> Owner | None:
    """``smithbob_LATE_1234_5678_lab01_generators.ipynb`` at the top of a Canvas download."""
    match = _CANVAS.match(member)
    if not match:
        return None
    user = match["user"]
    return Owner("canvas", match["name"] or user, user, late=bool(match["late"]), file=match["file"])


def moodle_owner(member: str) -> Owner | None:
    """``Bob Smith_1234567_assignsubmission_file_/lab01_generators.ipynb`` in a Moodle download."""
    match = _MOODLE.match(member)
    if not match:
        return None
    file = PurePosixPath(match["path"] or match["flat"]).name
    return Owner("moodle", match["name"].strip(), match["participant"], file=file)


def _created_at(value: Any) -> dt.datetime | None:
    if isinstance(value, dt.datetime):
        return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
    if isinstance(value, str):
        text = re.sub(r"(\.\d{6})\d+", r"\1", value.strip())  # Ruby writes nanoseconds
        text = re.sub(r" ([+-]\d\d:?\d\d)$", r"\1", text)
        try:
            stamp = dt.datetime.fromisoformat(text)
        except ValueError:
            return None
        return stamp if stamp.tzinfo else stamp.replace(tzinfo=dt.UTC)
    return None


def gradescope_owners(metadata: Any) -> dict[str, Owner]:
    """``submission_<id>`` folder -> its first submitter, from a parsed ``submission_metadata.yml``."""
    owners: dict[str, Owner] = {}
    if not isinstance(metadata, dict):
        return owners
    for folder, info in metadata.items():
        if not isinstance(folder, str) or not isinstance(info, dict):
            continue
        # Ruby writes symbol keys as ":submitters:", which YAML reads as the key ":submitters"
        submitters = [s for s in info.get(":submitters", []) or [] if isinstance(s, dict)]
        people = [str(s.get(":name") or "").strip() for s in submitters]
        first = submitters[0] if submitters else {}
        sid = str(first.get(":sid") or "").strip() or folder.removeprefix("submission_")
        owners[folder] = Owner(
            "gradescope",
            " + ".join(p for p in people if p) or folder,
            sid,
            email=str(first.get(":email") or ""),
            submitted_at=_created_at(info.get(":created_at")),
        )
    return owners


def gradescope_folder(member: str) -> str | None:
    """The ``submission_<id>`` folder a member of a Gradescope export sits in."""
    match = _GRADESCOPE_FOLDER.search(member)
    return match["folder"] if match else None
