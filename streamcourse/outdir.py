"""Write the reports into OUT without ever following a link someone planted there.

A learner (or anything that ran before) may have left ``OUT/feedback`` or
``OUT/grades.csv`` as a symbolic link to a file of the instructor's; a writer
that opens ``OUT/grades.csv`` would overwrite that file. So:

* OUT itself must be a real folder (a link is refused, with the message saying why);
* everything is written into a fresh staging folder the grader creates inside
  OUT, with paths resolved relative to open folder descriptors, ``O_NOFOLLOW``
  everywhere and ``O_EXCL`` for every file (nothing there can pre-exist);
* ``commit`` then moves each report into OUT with ``rename``, which replaces a
  link at the destination rather than writing through it; what it replaced is
  deleted with the staging folder (``shutil.rmtree`` does not follow links).

A run that fails leaves OUT as it was.
"""

from __future__ import annotations

import os
import secrets
import shutil
from pathlib import Path
from types import TracebackType

__all__ = ["OutDirError", "ReportDir"]

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
_FILE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
_REPLACED = ".replaced"


class OutDirError(OSError):
    """The reports cannot be written where asked; the message says what to do."""


def _real_folder(out: Path) -> None:
    if out.is_symlink():
        raise OutDirError(
            f"cannot write the reports to {out}: it is a symbolic link (to {os.readlink(out)}) and reports "
            "are never written through a link; give the folder it points to, or a new name"
        )
    if out.exists() and not out.is_dir():
        raise OutDirError(f"cannot write the reports to {out}: it is a file, not a folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutDirError(f"cannot write the reports to {out}: {exc.strerror or exc}") from None


def _part(name: str) -> str:
    if not name or name in (".", "..") or "/" in name or "\x00" in name:
        raise OutDirError(f"not a file name for a report: {name!r}")
    return name


class ReportDir:
    """``with ReportDir(out) as reports: reports.write("feedback/alice/lab01.md", text)``."""

    def __init__(self, out: Path) -> None:
        self.out = Path(out)
        _real_folder(self.out)
        try:
            self._out_fd = os.open(self.out, _DIR_FLAGS)
            self._stage_name = f".streamcourse-{secrets.token_hex(6)}"
            os.mkdir(self._stage_name, 0o700, dir_fd=self._out_fd)
            self._stage_fd = os.open(self._stage_name, _DIR_FLAGS, dir_fd=self._out_fd)
        except OSError as exc:
            raise OutDirError(f"cannot write the reports to {self.out}: {exc.strerror or exc}") from None
        self._top: set[str] = set()

    def _folder(self, parts: list[str]) -> int:
        """An open descriptor of ``parts`` inside the staging folder, made as needed, links refused."""
        fd = os.dup(self._stage_fd)
        for part in parts:
            try:
                os.mkdir(part, 0o755, dir_fd=fd)
            except FileExistsError:
                pass
            try:
                child = os.open(part, _DIR_FLAGS, dir_fd=fd)
            finally:
                os.close(fd)
            fd = child
        return fd

    def write(self, relpath: str, data: str | bytes) -> None:
        """Create ``relpath`` (``/``-separated, inside OUT) with ``data``; it must not exist yet in this run."""
        parts = [_part(p) for p in relpath.split("/")]
        blob = data.encode("utf-8") if isinstance(data, str) else data
        folder = self._folder(parts[:-1])
        try:
            fd = os.open(parts[-1], _FILE_FLAGS, 0o644, dir_fd=folder)
        finally:
            os.close(folder)
        try:
            view = memoryview(blob)
            while view:
                view = view[os.write(fd, view) :]
        finally:
            os.close(fd)
        self._top.add(parts[0])

    def commit(self) -> None:
        """Move every report into OUT, replacing (never following) what had those names."""
        os.close(self._folder([_REPLACED]))  # where what gets replaced goes, to be deleted with the stage
        for name in sorted(self._top):
            try:
                os.rename(name, f"{_REPLACED}/{name}", src_dir_fd=self._out_fd, dst_dir_fd=self._stage_fd)
            except FileNotFoundError:
                pass
            os.rename(name, name, src_dir_fd=self._stage_fd, dst_dir_fd=self._out_fd)
        self.close()

    def close(self) -> None:
        """Delete the staging folder (and what commit replaced); OUT keeps only the reports."""
        if self._stage_fd < 0:
            return
        os.close(self._stage_fd)
        self._stage_fd = -1
        shutil.rmtree(self._stage_name, dir_fd=self._out_fd, ignore_errors=True)
        os.close(self._out_fd)

    def __enter__(self) -> ReportDir:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if kind is None:
            self.commit()
        else:
            self.close()
