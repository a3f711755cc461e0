"""Unpack a zip someone else made, without letting it write outside its folder or fill the disk.

An LMS download is mostly harmless, but a learner chooses their upload's
name and content, and an archive edited by hand can hold ``../`` paths,
absolute paths, symbolic links or a few kilobytes that inflate to gigabytes.
Every member is checked before anything is written; sizes are counted while
inflating (the sizes in the zip's own headers are claims, not facts); and
files are created with ``O_EXCL | O_NOFOLLOW`` in a folder made for this zip.
"""

from __future__ import annotations

import datetime as dt
import os
import stat
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

__all__ = ["ZipLimits", "ZipError", "Member", "Unpacked", "unpack"]

CHUNK = 1 << 16


class ZipError(ValueError):
    """The archive cannot be unpacked safely; the message says which member and why."""


class _MemberTooBig(ZipError):
    """One member is over a limit: skip it. ``archive_full`` when the whole archive's budget is spent."""

    def __init__(self, text: str, archive_full: bool = False) -> None:
        super().__init__(text)
        self.archive_full = archive_full


@dataclass(frozen=True)
class ZipLimits:
    max_members: int = 20_000
    max_file_mb: int = 64  # a notebook with big outputs is a few MB; more is not a lab
    max_total_mb: int = 1024
    max_ratio: int = 200  # inflated/compressed, for members over 8 MB; ordinary notebooks compress 5-20 times


@dataclass(frozen=True)
class Member:
    name: str  # as written in the archive (forward slashes)
    path: Path  # where it was unpacked
    modified: dt.datetime  # the entry's timestamp: local time of whoever made the zip, no zone


@dataclass
class Unpacked:
    members: list[Member] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # one sentence per member left out, and why


def _problem(info: zipfile.ZipInfo) -> str:
    """Why this member must not be unpacked, or '' when it may."""
    name = info.filename
    if "\x00" in name or "\\" in name:
        return "its name holds a backslash or NUL byte"
    path = PurePosixPath(name)
    if path.is_absolute() or (len(name) > 1 and name[1] == ":"):
        return "it has an absolute path"
    if ".." in path.parts:
        return "its path leads out of the folder (..)"
    kind = stat.S_IFMT(info.external_attr >> 16)  # 0 when the zip tool recorded no Unix file type
    if kind == stat.S_IFLNK:
        return "it is a symbolic link"
    if kind and kind not in (stat.S_IFREG, stat.S_IFDIR):
        return "it is not a regular file"
    if info.flag_bits & 0x1:
        return "it is encrypted"
    return ""


def _check_archive(archive: zipfile.ZipFile, limits: ZipLimits, label: str) -> None:
    infos = archive.infolist()
    if len(infos) > limits.max_members:
        raise ZipError(
            f"{label} holds {len(infos)} entries, more than the {limits.max_members} a class download has; "
            "is it the LMS's download of one assignment?"
        )
    claimed = sum(i.file_size for i in infos)
    if claimed > limits.max_total_mb << 20:
        raise ZipError(
            f"{label} unpacks to more than {limits.max_total_mb} MB ({claimed >> 20} MB); "
            "unpack it yourself and grade the folder if it is genuine."
        )


def _copy(archive: zipfile.ZipFile, info: zipfile.ZipInfo, fd: int, budget: int, limits: ZipLimits) -> int:
    """Inflate one member into ``fd``; refuse as soon as it grows past its own or the archive's budget."""
    written = 0
    file_ceiling = limits.max_file_mb << 20
    ratio_ceiling = max(8 << 20, info.compress_size * limits.max_ratio)
    with archive.open(info) as source:
        while chunk := source.read(CHUNK):
            written += len(chunk)
            if written > budget:
                raise _MemberTooBig(f"the archive unpacks to more than {limits.max_total_mb} MB", archive_full=True)
            if written > file_ceiling:
                raise _MemberTooBig(f"it is bigger than {limits.max_file_mb} MB")
            if written > ratio_ceiling:
                raise _MemberTooBig(f"it inflates more than {limits.max_ratio} times its packed size (a zip bomb?)")
            os.write(fd, chunk)
    return written


def _create(dest: Path, name: str) -> int:
    """Make the member's folders (never following a link) and open a new file for it."""
    parts = PurePosixPath(name).parts
    folder = dest
    for part in parts[:-1]:
        folder = folder / part
        try:
            os.mkdir(folder, 0o755)
        except FileExistsError:
            if folder.is_symlink() or not folder.is_dir():
                raise ZipError(f"{name}: {part} is not a folder") from None
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
    try:
        return os.open(folder / parts[-1], flags, 0o644)
    except FileExistsError:
        raise ZipError(f"{name} appears twice in the archive") from None


def unpack(zip_path: Path, dest: Path, wanted: Callable[[str], bool], limits: ZipLimits = ZipLimits()) -> Unpacked:
    """Unpack the members ``wanted`` accepts into ``dest`` (an empty folder); report what was left out.

    Unsafe members (``..``, absolute paths, links) and members over the size
    limit are skipped and reported; an archive too big or too numerous as a
    whole raises ``ZipError``, as does one that is not a zip at all.
    """
    label = zip_path.name
    try:
        archive = zipfile.ZipFile(zip_path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise ZipError(f"{label} is not a zip archive that can be read ({exc}); download it again.") from None
    result = Unpacked()
    budget = limits.max_total_mb << 20
    with archive:
        _check_archive(archive, limits, label)
        dest.mkdir(parents=True, exist_ok=True)
        for info in archive.infolist():
            if info.is_dir():
                continue
            problem = _problem(info)
            if problem:
                result.skipped.append(f"{label}: skipped {info.filename!r}: {problem}")
                continue
            if not wanted(info.filename):
                continue
            try:
                fd = _create(dest, info.filename)
            except (ZipError, OSError) as exc:
                result.skipped.append(f"{label}: skipped {info.filename!r}: {exc}")
                continue
            target = dest.joinpath(*PurePosixPath(info.filename).parts)
            try:
                budget -= _copy(archive, info, fd, budget, limits)
            except _MemberTooBig as exc:
                os.close(fd)
                target.unlink()
                if exc.archive_full:
                    raise ZipError(
                        f"{label}: {exc}; unpack it yourself and grade the folder if it is genuine."
                    ) from None
                result.skipped.append(f"{label}: skipped {info.filename!r}: {exc}")
                continue
            except (zipfile.BadZipFile, OSError, EOFError) as exc:
                os.close(fd)
                target.unlink()
                result.skipped.append(f"{label}: skipped {info.filename!r}: it cannot be read ({exc})")
                continue
            os.close(fd)
            result.members.append(Member(info.filename, target, dt.datetime(*info.date_time)))
    return result
