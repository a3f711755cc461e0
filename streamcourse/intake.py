"""Submissions in: folders of notebooks, and the zips LMSs give for "download all submissions".

What ``grade`` accepts (each path on the command line is one of these):

* a notebook, or a folder searched for notebooks: the learner is the folder
  holding the notebook (``class/alice/lab01_generators.ipynb`` -> ``alice``);
* a plain zip of such folders (``alice/lab01_generators.ipynb``, ...), unpacked
  and read the same way;
* a Canvas, Moodle or Gradescope download zip, recognised by its file names
  (see ``streamcourse.lms``): the learner is named from the LMS's name *and*
  id (``smithbob_1234``), so two learners with one name never merge.

Only notebooks are unpacked (with ``streamcourse.safezip``); every other file,
an unsafe archive member, a zip inside the zip and an identical second copy
of a notebook is left out and said so in ``Intake.notes``. Names are cleaned
(``streamcourse.untrusted``) and made unique for the whole class, before any
sharding, so a learner has the same name in every shard.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import zipfile
from collections.abc import Hashable, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath

import yaml

from streamcourse import lms, safezip, untrusted

__all__ = ["IntakeError", "SubmissionFile", "Intake", "collect", "find_submissions", "lab_hints"]

MAX_METADATA = 32 << 20


class IntakeError(ValueError):
    """The submissions cannot be read; the message says what to do."""


@dataclass(frozen=True)
class SubmissionFile:
    """One notebook to grade, and who it is from."""

    path: Path
    learner: str
    origin: str = ""  # what the reports call it: the path given, or "class.zip:member"
    lms: str = "folder"  # folder | zip | canvas | moodle | gradescope
    display: str = ""  # the LMS's name for the learner
    lms_id: str = ""
    email: str = ""
    submitted_at: dt.datetime | None = None
    time_source: str = ""  # where submitted_at comes from, in words for the feedback
    lms_late: bool = False

    def __post_init__(self) -> None:
        if not self.origin:
            object.__setattr__(self, "origin", str(self.path))


@dataclass
class Intake:
    submissions: list[SubmissionFile] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class _Found:
    """A notebook before names are made unique: ``key`` says who it is from."""

    key: Hashable
    name: str
    file: SubmissionFile


# --------------------------------------------------------------------------- folders


def _notebooks_in(folder: Path) -> list[Path]:
    return sorted(
        f
        for f in folder.rglob("*.ipynb")
        if f.is_file() and not any(part.startswith(".") for part in f.relative_to(folder).parts)
    )


def _from_folder(path: Path) -> list[_Found]:
    files = [path] if path.is_file() else _notebooks_in(path)
    found = []
    for file in files:
        resolved = file.resolve()
        holder = resolved.parent
        found.append(_Found(("folder", str(holder)), untrusted.learner_name(holder.name), SubmissionFile(resolved, "")))
    return found


# --------------------------------------------------------------------------- zips


def _is_junk(name: str) -> bool:
    """Checkpoints, macOS resource forks and other hidden files: skipped without a word."""
    return any(p.startswith(".") or p == "__MACOSX" for p in PurePosixPath(name).parts)


def _is_notebook(name: str) -> bool:
    return name.lower().endswith(".ipynb") and not _is_junk(name)


def _gradescope_metadata(zip_path: Path, dest: Path) -> dict[str, lms.Owner] | None:
    unpacked = safezip.unpack(
        zip_path,
        dest,
        lambda n: PurePosixPath(n).name == lms.GRADESCOPE_METADATA,
        safezip.ZipLimits(max_file_mb=MAX_METADATA >> 20),
    )
    if not unpacked.members:
        return None
    try:
        data = yaml.safe_load(unpacked.members[0].path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise IntakeError(
            f"{zip_path.name}: {lms.GRADESCOPE_METADATA} cannot be read ({exc}); export the submissions again."
        ) from None
    return lms.gradescope_owners(data)


def _owner(kind: str, member: safezip.Member, owners: dict[str, lms.Owner]) -> lms.Owner | None:
    if kind == "canvas":
        return lms.canvas_owner(member.name)
    if kind == "moodle":
        return lms.moodle_owner(member.name)
    folder = lms.gradescope_folder(member.name)
    return owners.get(folder or "")


def _kind(names: list[str], owners: dict[str, lms.Owner] | None) -> str:
    notebooks = [n for n in names if _is_notebook(n)]
    if owners is not None:
        return "gradescope"
    if any("_assignsubmission_" in n for n in names):
        return "moodle"
    if notebooks and all("/" not in n and lms.canvas_owner(n) for n in notebooks):
        return "canvas"
    return "zip"


def _lms_file(zip_path: Path, kind: str, member: safezip.Member, owner: lms.Owner) -> _Found:
    time, source = owner.submitted_at, ("Gradescope's submission time" if owner.submitted_at else "")
    name = untrusted.learner_name(f"{owner.name}_{owner.lms_id}")
    file = SubmissionFile(
        member.path,
        "",
        f"{zip_path.name}:{member.name}",
        kind,
        untrusted.clean(owner.name),
        owner.lms_id,
        owner.email,
        time,
        source,
        owner.late,
    )
    return _Found((kind, owner.lms_id), name, file)


def _plain_file(zip_path: Path, member: safezip.Member, root: Path) -> _Found:
    holder = member.path.parent
    name = holder.name if holder != root else zip_path.stem
    stamp = member.modified.astimezone()  # the zip's timestamps are the zipping machine's local time
    file = SubmissionFile(
        member.path,
        "",
        f"{zip_path.name}:{member.name}",
        "zip",
        submitted_at=stamp,
        time_source="the zip entry's timestamp (local time of the machine that made the zip)",
    )
    return _Found(("zip", zip_path.name, str(PurePosixPath(member.name).parent)), untrusted.learner_name(name), file)


def _left_out(zip_path: Path, names: list[str]) -> list[str]:
    others = sorted(
        n
        for n in names
        if not n.endswith("/")
        and not _is_notebook(n)
        and not _is_junk(n)
        and PurePosixPath(n).name != lms.GRADESCOPE_METADATA
    )
    zips = [n for n in others if n.lower().endswith(".zip")]
    notes = [
        f"{zip_path.name}: {z!r} is a zip inside the download and was not opened: ask for the .ipynb itself"
        for z in zips
    ]
    rest = [n for n in others if n not in zips]
    if rest:
        shown = ", ".join(repr(n) for n in rest[:5]) + (f" and {len(rest) - 5} more" if len(rest) > 5 else "")
        notes.append(f"{zip_path.name}: {len(rest)} file(s) that are not notebooks were left out: {shown}")
    return notes


def _from_zip(zip_path: Path, workdir: Path, notes: list[str]) -> list[_Found]:
    dest = workdir / f"zip{len(list(workdir.iterdir()))}"
    dest.mkdir()
    try:
        owners = _gradescope_metadata(zip_path, dest / "metadata")
        unpacked = safezip.unpack(zip_path, dest / "files", _is_notebook)
        with zipfile.ZipFile(zip_path) as archive:
            names = archive.namelist()
    except (safezip.ZipError, OSError, zipfile.BadZipFile) as exc:
        raise IntakeError(str(exc) if isinstance(exc, safezip.ZipError) else f"{zip_path.name}: {exc}") from None
    kind = _kind(names, owners)
    notes += unpacked.skipped + _left_out(zip_path, names)
    found = []
    for member in unpacked.members:
        if kind == "zip":
            found.append(_plain_file(zip_path, member, dest / "files"))
            continue
        owner = _owner(kind, member, owners or {})
        if owner is None:
            notes.append(
                f"{zip_path.name}: {member.name!r} is not named the way {kind.title()} names submissions; "
                "it was left out (grade it on its own if it is one)"
            )
            continue
        found.append(_lms_file(zip_path, kind, member, owner))
    return found


# --------------------------------------------------------------------------- the class


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _drop_copies(files: list[SubmissionFile], notes: list[str]) -> list[SubmissionFile]:
    """A second, identical copy of a learner's notebook is graded once, and said so."""
    seen: dict[tuple[str, str], SubmissionFile] = {}
    kept = []
    for file in sorted(files, key=lambda f: (f.learner, f.origin)):
        key = (file.learner, _digest(file.path))
        if key in seen:
            notes.append(f"{file.learner}: {file.origin} is an identical copy of {seen[key].origin}; graded once")
            continue
        seen[key] = file
        kept.append(file)
    return kept


def collect(paths: Iterable[str | Path], workdir: Path | None) -> Intake:
    """Every notebook under ``paths`` (zips unpacked into ``workdir``), each with a unique learner name."""
    intake = Intake()
    found: list[_Found] = []
    given = [Path(p) for p in paths]
    for path in given:
        if path.is_file() and path.suffix.lower() == ".zip":
            if workdir is None:
                raise IntakeError(f"{path}: zips are unpacked by grade(); give a folder or a notebook here")
            found += _from_zip(path, workdir, intake.notes)
        elif path.exists():
            found += _from_folder(path)
            intake.notes += (
                [
                    f"{z}: a zip inside a submissions folder is not opened; give it to grade on its own"
                    for z in sorted(path.rglob("*.zip"))
                ]
                if path.is_dir()
                else []
            )
        else:
            raise IntakeError(f"{path}: no such file or folder")
    if not found:
        raise IntakeError("no notebooks (*.ipynb) found in " + ", ".join(map(str, given)))
    names = untrusted.unique_names({(f.key, f.name) for f in found})
    files = {f.file.path: replace(f.file, learner=names[f.key]) for f in found}
    intake.submissions = sorted(
        _drop_copies(list(files.values()), intake.notes), key=lambda s: (s.learner, s.path.name)
    )
    return intake


def find_submissions(paths: Iterable[str | Path]) -> list[SubmissionFile]:
    """Notebooks named on the command line, or found in folders (no zips); the learner is the holding folder."""
    return collect(paths, None).submissions


_LAB_IN_TEXT = re.compile(rb'"lab"\s*:\s*"(lab\d\d)"')


def lab_hints(path: Path) -> set[str]:
    """Labs a notebook probably belongs to, from its name and its first 64 KiB (never parsed here)."""
    hints = set(re.findall(r"lab\d\d", path.name))
    try:
        with open(path, "rb") as file:
            hints.update(m.decode() for m in _LAB_IN_TEXT.findall(file.read(1 << 16)))
    except OSError:
        pass
    return hints
