"""``python -m streamcourse release OUT.zip``: what learners receive, and nothing else.

In the zip: the README, the set-up files (``pyproject.toml``, ``environment.yml``,
``Makefile``, ``conftest.py``), the lessons (``notebooks/``), the labs
(``labs/``), the support package (``streamcourse/``) and the visible checks
(``tests/labs/test_lab*.py`` and ``checks.ini``) that ``check()`` runs. Never
``solutions/``, ``tests/labs/wrong/`` or any other test, bench or CI file.

Three guards, because a release is public the moment it is handed out:

* the list is an allow-list, and in a git checkout only files git tracks are
  taken (a hidden check someone copied into ``tests/labs/`` for a moment stays out);
* ``--checks DIR`` names the hidden checks: a release holding a file with the
  same content as one of them is refused;
* stale labs (``labs/`` not rebuilt from ``solutions/``) are refused.

The zip is reproducible: members sorted, one fixed timestamp, fixed modes.
"""

from __future__ import annotations

import hashlib
import subprocess
import zipfile
from collections.abc import Iterable
from pathlib import Path

from streamcourse import building
from streamcourse.checking import REPO

__all__ = ["ReleaseError", "INCLUDE", "NEVER", "members", "build"]

INCLUDE = (
    "README.md",
    "LICENSE",
    "pyproject.toml",
    "environment.yml",
    "Makefile",
    "conftest.py",
    "notebooks/*.ipynb",
    "labs/*.ipynb",
    "streamcourse/*.py",
    "tests/labs/test_lab*.py",
    "tests/labs/checks.ini",
)
NEVER = ("solutions/", "tests/labs/wrong/", "tests/grading_fixtures/", ".ci/", "bench/")
_STAMP = (1980, 1, 1, 0, 0, 0)


class ReleaseError(RuntimeError):
    """The release cannot be made safely; the message says what to fix."""


def _tracked(root: Path) -> set[str] | None:
    """Files git tracks under ``root``, or None outside a git checkout."""
    try:
        listing = subprocess.run(  # noqa: S603 - our own fixed command line
            ["git", "-C", str(root), "ls-files", "-z"],  # noqa: S607 - git from PATH, as the instructor runs it
            capture_output=True,
            check=True,
            timeout=60,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return set(listing.stdout.decode("utf-8", "replace").split("\0")) - {""}


def members(root: Path = REPO) -> tuple[list[str], list[str]]:
    """The release's files, and the untracked files left out, as paths relative to ``root``."""
    found = {p.relative_to(root).as_posix() for pattern in INCLUDE for p in root.glob(pattern) if p.is_file()}
    tracked = _tracked(root)
    untracked = sorted(found - tracked) if tracked is not None else []
    found -= set(untracked)
    leaked = sorted(f for f in found if f.startswith(NEVER))
    if leaked:
        raise ReleaseError(f"the release would hold instructor files: {', '.join(leaked)}")
    return sorted(found), untracked


def _digests(folders: Iterable[Path]) -> dict[str, Path]:
    return {
        hashlib.sha256(p.read_bytes()).hexdigest(): p
        for folder in folders
        for p in Path(folder).rglob("*")
        if p.is_file()
    }


def build(out: Path, root: Path = REPO, hidden: Iterable[Path] = ()) -> tuple[list[str], list[str]]:
    """Write the learners' zip to ``out``; returns its members and the untracked files left out."""
    stale = building.stale_labs(root / "solutions", root / "labs") if (root / "solutions").is_dir() else []
    if stale:
        raise ReleaseError("labs/ are stale (" + "; ".join(stale) + "): run `python -m streamcourse build` first")
    names, untracked = members(root)
    secret = _digests(hidden)
    for name in names:
        match = secret.get(hashlib.sha256((root / name).read_bytes()).hexdigest())
        if match:
            raise ReleaseError(
                f"{name} is the hidden check {match}: keep hidden checks out of the repository's tests/labs"
            )
    with zipfile.ZipFile(out, "w") as archive:
        for name in names:
            info = zipfile.ZipInfo(name, _STAMP)
            info.external_attr = 0o100644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, (root / name).read_bytes())
    return names, untracked
