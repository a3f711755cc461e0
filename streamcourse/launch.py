"""``run_engine``: how ``grade`` starts the grading engine and reads its records — the one seam between them.

The engine (``streamcourse.engine``) runs as its own process with a scrubbed
environment: no ``OPENAI_API_KEY`` or other secret of the instructor's reaches
it, nor anything it starts. ``grade`` sends it a
:class:`~streamcourse.records.GradingSpec` on stdin and keeps stdin open (the
engine stops when ``grade`` goes away); the engine answers one JSON line per
event on stdout, each record checked as it is read.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import IO, Any

from streamcourse import pacing
from streamcourse.checking import REPO
from streamcourse.intake import lab_hints
from streamcourse.records import GradingSpec, Job, Limits, RecordError, SubmissionRecord, load

__all__ = ["EngineError", "ENV_KEEP", "run_engine"]

#: Environment variables the engine may see (everything else, secrets included, is dropped).
ENV_KEEP = ("PATH", "LANG", "LANGUAGE", "LC_ALL", "LC_CTYPE", "TZ", "STREAMCOURSE_SPEED")


class EngineError(RuntimeError):
    """The engine stopped or failed; the records it finished were already passed to ``on_done``."""


def _engine_env(root: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k in ENV_KEEP or k.startswith("LC_")}
    env.setdefault("PATH", "/usr/bin:/bin")
    env.setdefault(pacing.ENV, pacing.CHECKING_SPEED)
    env.update(
        HOME=root,
        TMPDIR=root,
        PYTHONPATH=str(REPO),
        PYTHONDONTWRITEBYTECODE="1",
        PYTHONUNBUFFERED="1",
        MALLOC_ARENA_MAX="2",  # threads would each reserve 64 MiB of address space otherwise
        MPLBACKEND="Agg",
    )
    return env


def _spec(
    submissions: list[Any],
    labs: dict[str, list[str]],
    check_dirs: Iterable[str | Path],
    jobs: int | None,
    limits: Limits | None,
    isolated: bool,
) -> GradingSpec:
    return GradingSpec(
        jobs=[Job(i, str(s.path), s.learner) for i, s in enumerate(submissions)],
        labs=labs,
        hidden=[str(Path(d).resolve()) for d in check_dirs],
        workers=max(1, jobs or os.cpu_count() or 1),
        limits=limits or Limits(),
        isolated=isolated,
        hints=sorted({lab for s in submissions for lab in lab_hints(s.path)}),
    )


def _read(
    stdout: IO[bytes], on_done: Callable[[SubmissionRecord], None] | None
) -> tuple[dict[int, SubmissionRecord], dict[str, Any]]:
    """Every record the engine writes until it ends, and its ready event."""
    records: dict[int, SubmissionRecord] = {}
    ready: dict[str, Any] = {}
    for raw in stdout:
        try:
            event = json.loads(raw)
        except json.JSONDecodeError:
            continue  # a library's stray print: not an event
        if event.get("event") == "ready":
            ready = event
        elif event.get("event") == "done":
            try:
                record = load(SubmissionRecord, json.dumps(event["record"]))
            except RecordError as exc:
                raise EngineError(f"the grading engine sent an unreadable record ({exc})") from None
            records[record.id] = record
            if on_done:
                on_done(record)
        elif event.get("event") == "fatal":
            raise EngineError("the grading engine failed: " + str(event.get("error", "?")))
    return records, ready


def run_engine(
    submissions: list[Any],
    labs: dict[str, list[str]],
    check_dirs: Iterable[str | Path] = (),
    jobs: int | None = None,
    limits: Limits | None = None,
    isolated: bool = True,
    on_done: Callable[[SubmissionRecord], None] | None = None,
) -> tuple[list[SubmissionRecord], dict[str, Any]]:
    """Grade ``submissions`` (each with ``.path`` and ``.learner``) in an engine process; one record each, and its ready info.

    ``on_done(record)`` is called as each submission is done, so what was graded
    is kept even when the engine dies before the end (then ``EngineError``).
    """
    spec = _spec(submissions, labs, check_dirs, jobs, limits, isolated)
    root = tempfile.mkdtemp(prefix="scg-")  # short: sockets live below it, and their paths must stay short
    engine = subprocess.Popen(
        [sys.executable, "-m", "streamcourse.engine"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env=_engine_env(root),
        cwd=root,
        start_new_session=True,
    )
    if engine.stdin is None or engine.stdout is None:  # never: both are pipes; this says so to the type checker
        raise EngineError("the engine started without its pipes")
    try:
        engine.stdin.write((json.dumps(dataclasses.asdict(spec)) + "\n").encode())
        engine.stdin.flush()  # stdin stays open: the engine stops when the grader goes away
        records, ready = _read(engine.stdout, on_done)
        engine.wait(timeout=30)
    finally:
        _stop(engine)
        shutil.rmtree(root, ignore_errors=True)
    missing = [s for i, s in enumerate(submissions) if i not in records]
    if missing:
        raise EngineError(
            f"the grading engine stopped (status {engine.returncode}) before grading {len(missing)} submission(s)"
        )
    return [records[i] for i in range(len(submissions))], ready


def _stop(engine: subprocess.Popen[bytes]) -> None:
    if engine.poll() is not None:
        return
    try:
        if engine.stdin is not None:
            engine.stdin.close()  # the engine stops its checkers and exits when its input closes
        engine.wait(timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        engine.kill()
        engine.wait()
