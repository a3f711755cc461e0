"""The one seam between the class-level grader and the grading engine: ``run_engine``.

``run_engine(submissions, labs, check_dirs, jobs, limits, protected, on_done)``
starts ``streamcourse.sandbox`` in a separate process with a scrubbed
environment, sends it the submissions, each lab's exercises and the
``Limits``, and returns one record per submission (and the engine's ready
info), calling ``on_done(record)`` as each one is done. How one submission is
run safely is the engine's business (see ``streamcourse.sandbox``); nothing in
the class-level grader runs learner code or reads a record except through
``streamcourse.results``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterable

from streamcourse import pacing
from streamcourse.checking import REPO
from streamcourse.intake import SubmissionFile, lab_hints
from streamcourse.sandbox import ENV_KEEP, Limits

__all__ = ["EngineError", "run_engine"]


class EngineError(RuntimeError):
    """The engine stopped or failed; the records it finished were already passed to ``on_done``."""


def _engine_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k in ENV_KEEP or k.startswith("LC_")}
    env.setdefault("PATH", "/usr/bin:/bin")
    env.setdefault(pacing.ENV, pacing.CHECKING_SPEED)
    env.update(
        PYTHONPATH=str(REPO),
        PYTHONDONTWRITEBYTECODE="1",
        PYTHONUNBUFFERED="1",
        MALLOC_ARENA_MAX="2",  # threads would each reserve 64 MiB of address space otherwise
        MPLBACKEND="Agg",
    )
    return env


def run_engine(
    submissions: list[SubmissionFile],
    labs: dict[str, list[str]],
    check_dirs: Iterable[str | Path] = (),
    jobs: int | None = None,
    limits: Limits | None = None,
    protected: Iterable[str | Path] = (),
    on_done: Callable[[dict[str, Any]], None] | None = None,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Grade submissions in the engine; returns one raw record per submission and the engine's ready info."""
    limits = limits or Limits()
    spec = {
        "subs": [{"id": i, "path": str(s.path), "learner": s.learner} for i, s in enumerate(submissions)],
        "labs": labs,
        "hint": sorted({lab for s in submissions for lab in lab_hints(s.path)}),
        "hidden": [str(Path(d).resolve()) for d in check_dirs],
        "jobs": max(1, jobs or os.cpu_count() or 1),
        "limits": dataclasses.asdict(limits),
        "protected": sorted({str(Path(p).resolve()) for p in (*protected, REPO, *check_dirs)}),
    }
    root = tempfile.mkdtemp(prefix="streamcourse-grade-")
    env = _engine_env()
    env.update(HOME=root, TMPDIR=root)
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamcourse.sandbox"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env=env,
        cwd=root,
        start_new_session=True,
    )
    assert proc.stdin is not None and proc.stdout is not None
    records: dict[int, dict[str, Any]] = {}
    ready: dict[str, Any] = {}
    try:
        proc.stdin.write((json.dumps(spec) + "\n").encode())
        proc.stdin.flush()  # stdin stays open: the engine stops when the grader goes away
        for raw in proc.stdout:
            try:
                event = json.loads(raw)
            except json.JSONDecodeError:
                continue
            if event.get("event") == "ready":
                ready = event
            elif event.get("event") == "done":
                record = event["record"]
                records[record["id"]] = record
                if on_done:
                    on_done(record)
            elif event.get("event") == "warning":
                ready.setdefault("collect_errors", []).append(event.get("text", ""))
            elif event.get("event") == "fatal":
                raise EngineError("the grading engine failed: " + event.get("error", "?"))
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            try:
                proc.stdin.close()  # the engine stops its children and exits when its input closes
                proc.wait(timeout=5)
            except (OSError, subprocess.TimeoutExpired):
                proc.kill()
                proc.wait()
        shutil.rmtree(root, ignore_errors=True)
    missing = [s for i, s in enumerate(submissions) if i not in records]
    if missing:
        raise EngineError(f"the grading engine stopped (status {proc.returncode}) before grading {len(missing)} submission(s)")
    return [records[i] for i in range(len(submissions))], ready
