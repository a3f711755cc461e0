"""How one submission is run safely: the grading engine and the child each submission runs in.

``streamcourse.grading`` grades a class; it starts this module as a separate
process (``python -m streamcourse.sandbox``) and reads what it reports. Why
it works this way:

* **Warm engine, one fork per submission.** The grader starts one *engine*
  process with a scrubbed environment (no ``OPENAI_API_KEY`` or other secret:
  not even in ``/proc/<pid>/environ``). The engine imports pytest, FastAPI,
  httpx and every check file once, freezes its heap (``gc.freeze``) and then
  ``os.fork()``\\ s one child per submission. A child starts in milliseconds
  with everything imported, which is what makes a class of 100 fast; a fresh
  Python per notebook spends most of its time importing.
* **The child is the only place learner code runs.** Right after the fork it
  gets its own process group, CPU/memory/file-size limits
  (``resource.setrlimit``), a temporary working directory, a minimal
  environment, stdin/stdout/stderr on ``/dev/null`` and a capped writer for
  ``print``. An audit hook (``sys.addaudithook``, which learner code cannot
  remove) refuses writes to the repository, the checks, the submissions and the
  grades, refuses to start processes from learner code, and notes tricks
  (``gc``/frame/``ctypes`` access) for the instructor.
* **Results stream.** The child runs the notebook cell by cell (each cell with a
  time limit; a failing cell is skipped, as when a learner moves on), then the
  lab's checks, and writes one JSON line per event to a pipe: each cell that
  failed, the checks collected, each check as it starts and as it ends. When a
  child hangs or dies, the engine already holds everything earned; it labels
  the check (or cell) that was running — *timed out* or *crashed* — kills the
  child's whole process group and starts a fresh child that skips the culprit
  and runs what is left, within the submission's time budget.
* **Integrity.** The engine knows which checks each lab has (it collected them
  before forking); a child must run exactly those. An async check whose
  coroutine is never awaited fails. Learner code that reaches into the test
  machinery is flagged for the instructor (static ``ast`` scan plus runtime
  signs), and what it patched in pytest, pluggy, the checks or this package is
  put back before the checks run.

The protocol, one JSON object per line:

* grader → engine (stdin): one spec — the submissions, each lab's exercises,
  the hidden check folders, ``jobs``, the ``Limits`` and the protected paths.
  stdin then stays open; when it closes, the engine stops its children and exits.
* engine → grader (stdout): ``{"event": "ready"}`` once warm (the checks of
  each lab, collect errors, the thread count), ``{"event": "done", "record":
  ...}`` per submission, ``{"event": "warning"}`` and ``{"event": "fatal"}``.
* child → engine (a pipe): messages ``{"k": ..., "t": token}`` — ``phase``,
  ``lab``, ``flag``, ``cell``, ``collected``, ``start``, ``result``,
  ``finished``, ``internal``; a message without the child's token is ignored
  and flagged.

A check's status is one of ``PASSED``, ``FAILED``, ``TIMED_OUT``, ``CRASHED``,
``ERROR``, ``NOT_RUN`` and ``CHECK_BROKE`` (defined here, re-exported by
``streamcourse.grading``).
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import hashlib
import inspect
import io
import json
import math
import os
import re
import selectors
import shutil
import signal
import sys
import tempfile
import time
import types
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

import pytest

from streamcourse import notebooks
from streamcourse.checking import CHECKS_DIR, SOLUTIONS_DIR, strip_magics

__all__ = [
    "PASSED",
    "FAILED",
    "TIMED_OUT",
    "CRASHED",
    "ERROR",
    "NOT_RUN",
    "CHECK_BROKE",
    "HIDDEN_GENERIC",
    "ENV_KEEP",
    "Limits",
    "scan_code",
]


PASSED = "passed"
FAILED = "failed"
TIMED_OUT = "timed out"
CRASHED = "crashed"
ERROR = "error in your code"
NOT_RUN = "not run"
CHECK_BROKE = "check could not run"

HIDDEN_GENERIC = "a hidden check failed"
#: Environment variables a child may see (everything else, secrets included, is dropped).
ENV_KEEP = ("PATH", "LANG", "LANGUAGE", "LC_ALL", "LC_CTYPE", "TZ", "STREAMCOURSE_SPEED")
MAX_MESSAGE = 1200  # characters of a failure message kept (a repr of a huge value can be endless)
MAX_FLAGS = 60
GRACE = 1.5  # seconds the engine waits beyond a child's own time limits before killing it


@dataclass
class Limits:
    """Per-submission limits. ``timeout`` is the whole wall-clock budget of one submission."""

    timeout: float = 60.0
    cell_timeout: float | None = None  # default: a quarter of timeout, 1..10 s
    check_timeout: float | None = None  # default: a third of timeout, 2..30 s
    memory_mb: int = 1024  # address space a child may add to the warm engine's
    file_mb: int = 64  # largest file a child may write
    output_kb: int = 64  # printed output kept (the rest is discarded)
    attempts: int = 4  # fresh children per submission after hangs and crashes

    @property
    def cell_seconds(self) -> float:
        return self.cell_timeout or min(10.0, max(1.0, self.timeout / 4))

    @property
    def check_seconds(self) -> float:
        return self.check_timeout or min(30.0, max(2.0, self.timeout / 3))


def _check_paths(lab: str | None, hidden: list[str]) -> list[str]:
    """The check files a child collects: the lab's own file(s) plus the hidden folders."""
    own = sorted(CHECKS_DIR.glob(f"test_{lab}_*.py")) if lab else []
    return [str(p) for p in (own or [CHECKS_DIR])] + list(hidden)


# --------------------------------------------------------------------------- static scan

_MACHINERY = ("pytest", "_pytest", "pluggy", "pytest_asyncio", "streamcourse.checking", "streamcourse.grading",
              "streamcourse.sandbox", "streamcourse.building", "tests", "conftest")
_TRICK_MODULES = {
    "ctypes": "imports ctypes (raw memory access)",
    "gc": "imports gc (can find the grader's objects)",
    "builtins": "imports builtins (can replace built-in functions)",
    "signal": "imports signal (can disable the grader's time limits)",
    "resource": "imports resource (can change the grader's limits)",
    "importlib": "imports importlib (can reload or replace modules)",
}
_FRAME_ATTRS = {"f_back", "f_globals", "f_locals", "tb_frame", "gi_frame", "cr_frame", "ag_frame", "__globals__",
                "__code__", "__builtins__", "__subclasses__", "__closure__"}
_INSPECT_FRAMES = {"currentframe", "stack", "trace", "getouterframes", "getinnerframes", "getframeinfo",
                   "getsource", "getsourcelines", "getfile", "getmodule", "getclosurevars"}
_SYS_TRICKS = {"_getframe", "settrace", "setprofile", "addaudithook", "setrecursionlimit", "_current_frames"}
_GRADER_WORDS = ("tests/labs", "test_lab", "grades.csv", "grades.json", "feedback/", "checks.ini", "conftest")


def _dotted(node: ast.AST) -> str:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
        return ".".join(reversed(parts))
    return ""


def scan_code(cells: Iterable[tuple[int, str]]) -> list[str]:
    """What in a submission's code reaches into the test machinery, one line each (for the instructor)."""
    flags: list[str] = []

    def add(index: int, node: ast.AST, text: str) -> None:
        line = f"cell {index}, line {getattr(node, 'lineno', '?')}: {text}"
        if line not in flags:
            flags.append(line)

    for index, source in cells:
        try:
            tree = ast.parse(strip_magics(source))
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            continue
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
                for name in names:
                    top = name.split(".")[0]
                    if any(name == m or name.startswith(m + ".") for m in _MACHINERY) or top.startswith("test_"):
                        add(index, node, f"imports {name} (the test machinery or the checks)")
                    elif top in _TRICK_MODULES:
                        add(index, node, _TRICK_MODULES[top])
                if isinstance(node, ast.ImportFrom) and node.module == "inspect":
                    for alias in node.names:
                        if alias.name in _INSPECT_FRAMES:
                            add(index, node, f"uses inspect.{alias.name} (reads the grader's frames or source)")
                if isinstance(node, ast.ImportFrom) and node.module == "sys":
                    for alias in node.names:
                        if alias.name in _SYS_TRICKS or alias.name == "modules":
                            add(index, node, f"uses sys.{alias.name}")
            elif isinstance(node, ast.Attribute):
                dotted = _dotted(node)
                if dotted == "sys.modules" and not isinstance(node.ctx, ast.Load):
                    add(index, node, "changes sys.modules")
                elif dotted.startswith("sys.") and node.attr in _SYS_TRICKS:
                    add(index, node, f"uses {dotted}")
                elif dotted.startswith("inspect.") and node.attr in _INSPECT_FRAMES:
                    add(index, node, f"uses {dotted} (reads the grader's frames or source)")
                elif node.attr in _FRAME_ATTRS:
                    add(index, node, f"reads .{node.attr} (frames, code objects or globals)")
                elif dotted in ("os._exit", "os.kill", "os.killpg", "os.abort", "os.fork", "os.system", "os.setsid"):
                    add(index, node, f"calls {dotted}")
            elif isinstance(node, ast.Subscript) and _dotted(node.value) == "sys.modules" and not isinstance(node.ctx, ast.Load):
                add(index, node, "changes sys.modules")
            elif isinstance(node, ast.Call):
                func = _dotted(node.func)
                if func.startswith("sys.modules.") and func.rsplit(".", 1)[1] in ("update", "pop", "setdefault", "clear", "__setitem__", "popitem"):
                    add(index, node, f"changes sys.modules ({func})")
                elif func in ("exec", "eval", "compile", "__import__"):
                    add(index, node, f"calls {func}() (code built at run time escapes this scan)")
                elif func == "setattr" and node.args and isinstance(node.args[0], ast.Name) and node.args[0].id in (
                    "pytest", "_pytest", "checking", "streamcourse", "builtins", "sys"
                ):
                    add(index, node, f"patches {node.args[0].id} with setattr()")
            elif isinstance(node, ast.Constant) and isinstance(node.value, str):
                for word in _GRADER_WORDS:
                    if word in node.value:
                        add(index, node, f"mentions {word!r} (the grader's files)")
                        break
            elif isinstance(node, ast.Assign):
                for target in node.targets:
                    dotted = _dotted(target)
                    if dotted.split(".")[0] in ("pytest", "_pytest", "checking", "streamcourse", "builtins") and "." in dotted:
                        add(index, node, f"assigns {dotted} (patches the test machinery)")
    return flags


# --------------------------------------------------------------------------- the engine process


def _engine_main() -> int:
    """Runs in the engine: warm up, then fork one child per submission attempt."""
    events = os.fdopen(os.dup(1), "w", buffering=1, encoding="utf-8")
    os.dup2(2, 1)  # stray prints from imported libraries must not reach the event channel

    def emit(event: dict[str, Any]) -> None:
        events.write(json.dumps(event, default=str) + "\n")
        events.flush()

    try:
        spec = json.loads(sys.stdin.buffer.readline())
        engine = _Engine(spec, emit)
        engine.warm_up()
        engine.run()
    except Exception as exc:  # noqa: BLE001 - reported to the grader, which exits non-zero
        import traceback

        traceback.print_exc()
        emit({"event": "fatal", "error": f"{type(exc).__name__}: {exc}"})
        return 1
    return 0


_WARM_MODULES = (
    "asyncio", "tracemalloc", "itertools", "threading", "socket", "json", "csv",
    "pytest", "pytest_asyncio", "hypothesis", "psutil", "anyio",
    "fastapi", "fastapi.responses", "fastapi.sse", "starlette", "uvicorn", "httpx", "httpx_sse", "openai", "sse_starlette",
    "pydantic", "streamcourse", "streamcourse.checking", "streamcourse.server", "streamcourse.pacing",
    "streamcourse.wire", "streamcourse.llm", "streamcourse.proxies",
)


@dataclass
class _Sub:
    id: int
    path: str
    learner: str
    lab: str | None = None
    unreadable: str = ""
    results: dict[str, dict[str, Any]] = field(default_factory=dict)
    cells: dict[int, dict[str, Any]] = field(default_factory=dict)
    flags: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    skip_cells: set[int] = field(default_factory=set)
    attempts: int = 0
    started: float = 0.0
    deadline: float = 0.0

    def flag(self, text: str) -> None:
        if text not in self.flags and len(self.flags) < MAX_FLAGS:
            self.flags.append(text)


@dataclass
class _Attempt:
    sub: _Sub
    pid: int
    fd: int
    tmp: str
    token: str
    buf: bytes = b""
    phase: str = "start"
    key: Any = None
    phase_started: float = 0.0
    finished: bool = False
    killed: str = ""
    this_attempt: set[str] = field(default_factory=set)

    def limit(self, limits: Limits) -> float:
        per_phase = {
            "start": limits.cell_seconds, "read": limits.cell_seconds, "cell": limits.cell_seconds,
            "check": 3 * limits.check_seconds,
        }.get(self.phase, limits.check_seconds)
        return min(self.sub.deadline, self.phase_started + per_phase + GRACE)


class _Engine:
    def __init__(self, spec: dict[str, Any], emit: Callable[[dict[str, Any]], None]) -> None:
        self.spec = spec
        self.emit = emit
        self.limits = Limits(**spec["limits"])
        self.labs: dict[str, list[str]] = spec["labs"]
        self.hidden: list[str] = spec["hidden"]
        self.protected: list[str] = spec["protected"]
        self.expected: dict[str, list[dict[str, Any]]] = {}
        self.root = tempfile.mkdtemp(prefix="children-")
        self.sel = selectors.DefaultSelector()
        self.base_vms = 0
        self.check_hashes: dict[str, tuple[str, bytes]] = {}

    # ---- warm up (no threads may be left running: we fork afterwards)
    def warm_up(self) -> None:
        import importlib
        import threading
        import warnings

        warnings.simplefilter("ignore")
        for name in _WARM_MODULES:
            try:
                importlib.import_module(name)
            except Exception:  # noqa: BLE001 - a module being written by someone else may not import yet
                pass
        errors = self._collect([lab for lab in self.spec.get("hint", []) if lab in self.labs])
        for solution in sorted(SOLUTIONS_DIR.glob("lab[0-9][0-9]_*.ipynb"))[:1]:
            try:  # nbformat compiles its JSON schema on first use: do it once here, not in every child
                notebooks.read(solution)
            except notebooks.NotebookError:
                pass
        # Remember the checks' files, to detect (and undo) any change made while grading.
        for directory in [CHECKS_DIR, *map(Path, self.hidden)]:
            for file in sorted(Path(directory).rglob("*.py")):
                data = file.read_bytes()
                self.check_hashes[str(file)] = (hashlib.sha256(data).hexdigest(), data)
        self._freeze()  # children inherit a frozen heap: their gc passes stay cheap and pages stay shared
        try:
            import psutil

            self.base_vms = psutil.Process().memory_info().vms
        except Exception:  # noqa: BLE001
            self.base_vms = 0
        _become_subreaper()
        self.emit({
            "event": "ready",
            "checks": self.expected,
            "collect_errors": errors,
            "threads": threading.active_count(),
        })

    def _collect(self, labs: list[str]) -> list[str]:
        """Import the labs' check files here, before forking, and learn which checks each lab has."""
        from streamcourse import checking

        if not labs:
            return []
        sink: list[dict[str, Any]] = []
        paths: list[str] = []
        for lab in labs:
            paths += [p for p in _check_paths(lab, self.hidden) if p not in paths]
            self.expected.setdefault(lab, [])
        run = checking.run_checks(
            None,
            [e for lab in labs for e in self.labs[lab]] or ["-"],
            [Path(p) for p in paths],
            extra_args=["--collect-only", *_PYTEST_EXTRA],
            plugins=[_StreamPlugin(sink.append, self.hidden)],
            output=_Capped(64 * 1024),
        )
        for check in next((m["checks"] for m in sink if m.get("k") == "collected"), []):
            lab = check["exercise"].split(".")[0]
            if lab in labs:
                self.expected[lab].append(check)
        return list(run.collect_errors)

    @staticmethod
    def _freeze() -> None:
        import gc

        gc.collect()
        gc.freeze()

    # ---- scheduling
    def run(self) -> None:
        subs = deque(_Sub(s["id"], s["path"], s["learner"]) for s in self.spec["subs"])
        pending: deque[_Sub] = subs
        running: dict[int, _Attempt] = {}
        self.sel.register(sys.stdin.fileno(), selectors.EVENT_READ, None)
        jobs = int(self.spec["jobs"])
        try:
            while pending or running:
                while pending and len(running) < jobs:
                    attempt = self._start(pending.popleft())
                    running[attempt.fd] = attempt
                now = time.monotonic()
                wait = min((a.limit(self.limits) for a in running.values()), default=now + 1) - now
                for key, _ in self.sel.select(max(0.0, min(wait, 1.0))):
                    if key.data is None:
                        if not os.read(key.fd, 4096):  # the grader went away: stop everything
                            raise SystemExit(3)
                        continue
                    attempt = key.data
                    if attempt.fd in running and not self._read(attempt):
                        del running[attempt.fd]
                        self._end(attempt, pending)
                now = time.monotonic()
                for fd, attempt in list(running.items()):
                    if now >= attempt.limit(self.limits):
                        attempt.killed = "timeout"
                        del running[fd]
                        self._end(attempt, pending)
        finally:
            for attempt in running.values():
                _kill_group(attempt.pid)
            _kill_descendants()
            self._restore_checks()
            shutil.rmtree(self.root, ignore_errors=True)

    def _start(self, sub: _Sub) -> _Attempt:
        now = time.monotonic()
        if not sub.attempts:
            sub.started, sub.deadline = now, now + self.limits.timeout
        sub.attempts += 1
        read_fd, write_fd = os.pipe()
        tmp = tempfile.mkdtemp(prefix=f"s{sub.id}-", dir=self.root)
        token = os.urandom(12).hex()
        job = {
            "path": sub.path,
            "labs": self.labs,
            "hidden": self.hidden,
            "protected": self.protected,
            "skip_cells": sorted(sub.skip_cells),
            "skip_checks": sorted(sub.results),
            "limits": dataclasses.asdict(self.limits),
            "cpu": max(1, math.ceil(sub.deadline - now) + 1),
            "vms": self.base_vms,
            "tmp": tmp,
        }
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:  # the child: never returns
            _real_exit = os._exit
            try:
                os.close(read_fd)
                _child(job, write_fd, token)
            finally:
                _real_exit(70)
        os.close(write_fd)
        try:
            os.setpgid(pid, pid)
        except OSError:
            pass  # the child did it first
        os.set_blocking(read_fd, False)
        attempt = _Attempt(sub, pid, read_fd, tmp, token, phase_started=now)
        self.sel.register(read_fd, selectors.EVENT_READ, attempt)
        return attempt

    def _read(self, attempt: _Attempt) -> bool:
        """Take in what the child wrote; False at end of stream."""
        try:
            data = os.read(attempt.fd, 1 << 16)
        except BlockingIOError:
            return True
        except OSError:
            data = b""
        if not data:
            return False
        attempt.buf += data
        *lines, attempt.buf = attempt.buf.split(b"\n")
        for line in lines:
            self._handle(attempt, line)
        if len(attempt.buf) > 1 << 20:
            attempt.sub.flag("flooded the grader's result channel")
            attempt.killed = "flood"
            return False
        return True

    def _handle(self, attempt: _Attempt, line: bytes) -> None:
        sub = attempt.sub
        try:
            msg = json.loads(line)
            assert isinstance(msg, dict)
        except (ValueError, AssertionError):
            sub.flag("wrote something that is not a grader message to the result channel")
            return
        if msg.get("t") != attempt.token:
            sub.flag("sent forged results to the grader (wrong token) — ignored")
            return
        kind = msg.get("k")
        now = time.monotonic()
        if kind == "phase":
            attempt.phase, attempt.key, attempt.phase_started = str(msg.get("phase")), msg.get("key"), now
        elif kind == "lab":
            sub.lab = msg.get("lab")
            sub.unreadable = str(msg.get("error") or "")
            if sub.lab in self.labs and sub.lab not in self.expected:  # a lab the hints missed: learn it now
                for error in self._collect([sub.lab]):
                    self.emit({"event": "warning", "text": f"checks could not be loaded: {error}"})
                self._freeze()
        elif kind == "flag":
            sub.flag(str(msg.get("text"))[:300])
        elif kind == "cell":
            sub.cells[int(msg["index"])] = {"index": int(msg["index"]), "status": msg["status"], "error": str(msg.get("error", ""))[:MAX_MESSAGE]}
        elif kind == "collected":
            got = sorted(c["nodeid"] for c in msg.get("checks", []))
            want = sorted(c["nodeid"] for c in self.expected.get(sub.lab or "", []) if c["nodeid"] not in sub.results)
            if got != want:
                sub.flag(f"integrity: {len(got)} checks collected where the lab has {len(want)} to run — the test machinery was changed")
        elif kind == "start":
            attempt.phase, attempt.key, attempt.phase_started = "check", msg.get("nodeid"), now
        elif kind == "result":
            nodeid = str(msg.get("nodeid"))
            known = {c["nodeid"] for c in self.expected.get(sub.lab or "", [])}
            if nodeid not in known:
                sub.flag(f"integrity: a result for a check the lab does not have ({nodeid})")
                return
            previous = sub.results.get(nodeid)
            if previous and not (nodeid in attempt.this_attempt and previous["status"] == PASSED):
                sub.flag(f"integrity: a second result for {nodeid}")
                return
            attempt.this_attempt.add(nodeid)
            sub.results[nodeid] = {
                "status": str(msg.get("status")), "message": str(msg.get("message", ""))[:MAX_MESSAGE],
                "seconds": float(msg.get("seconds", 0.0)),
            }
            attempt.phase, attempt.key, attempt.phase_started = "checks", None, now
        elif kind == "finished":
            attempt.finished = True
        elif kind == "internal":
            sub.notes.append("grader error: " + str(msg.get("error"))[:MAX_MESSAGE])

    def _end(self, attempt: _Attempt, pending: deque[_Sub]) -> None:
        """A child is done (or killed): label what was running, then retry or report."""
        try:
            self.sel.unregister(attempt.fd)
        except (KeyError, ValueError):
            pass
        if attempt.killed:
            _kill_group(attempt.pid)
        status = _reap(attempt.pid)
        if attempt.buf and not attempt.killed:
            self._handle(attempt, attempt.buf)
        os.close(attempt.fd)
        _kill_group(attempt.pid)  # servers or helpers the learner's code left behind
        shutil.rmtree(attempt.tmp, ignore_errors=True)
        sub = attempt.sub
        if attempt.finished and not attempt.killed:
            return self._complete(sub, "")
        budget_gone = time.monotonic() >= sub.deadline - 0.5
        if attempt.killed == "timeout":
            label = TIMED_OUT
            why = (f"the submission used up its {self.limits.timeout:g} s" if budget_gone else "it did not finish in time")
        elif attempt.killed == "flood":
            label, why = CRASHED, "it flooded the grader's result channel"
        else:
            label, why = CRASHED, _describe_exit(status)
        retry = True
        if attempt.phase == "cell" and isinstance(attempt.key, int):
            verb = "did not finish in time and was stopped" if label == TIMED_OUT else f"stopped the notebook ({why})"
            sub.cells[attempt.key] = {"index": attempt.key, "status": label, "error": f"cell {attempt.key} {verb}; it was skipped and the rest graded"}
            sub.skip_cells.add(attempt.key)
        elif attempt.phase == "check" and attempt.key:
            seconds = time.monotonic() - attempt.phase_started
            if label != TIMED_OUT:
                text = f"the process running your code crashed during this check: {why}"
            elif budget_gone:
                text = f"your submission used up all its {self.limits.timeout:g} s during this check"
            else:
                text = f"this check did not finish within {seconds:.0f} s"
            sub.results[str(attempt.key)] = {"status": label, "message": text, "seconds": seconds}
        elif attempt.phase in ("start", "read"):
            sub.unreadable = sub.unreadable or f"the notebook could not be opened: {why}"
            retry = False
        if retry and not budget_gone and sub.attempts < self.limits.attempts and not sub.unreadable:
            sub.notes.append(f"attempt {sub.attempts} ended ({label}: {why}); graded the rest in a fresh process")
            pending.appendleft(sub)
            return None
        return self._complete(sub, f"{label}: {why}")

    def _complete(self, sub: _Sub, ended: str) -> None:
        checks = []
        for check in self.expected.get(sub.lab or "", []):
            result = sub.results.get(check["nodeid"])
            if result is None:
                if ended:
                    why = f"your submission {'ran out of time' if ended.startswith(TIMED_OUT) else 'crashed'} before this check"
                elif sub.unreadable:
                    why = sub.unreadable
                else:
                    why = "this check was collected but never ran"
                    sub.flag(f"integrity: check {check['nodeid']} was collected but never executed")
                result = {"status": NOT_RUN, "message": why, "seconds": 0.0}
            checks.append({**check, **result})
        self.emit({"event": "done", "record": {
            "id": sub.id, "path": sub.path, "learner": sub.learner, "lab": sub.lab, "unreadable": sub.unreadable,
            "cells": [sub.cells[i] for i in sorted(sub.cells)], "checks": checks, "flags": sub.flags,
            "notes": sub.notes, "attempts": sub.attempts, "ended": ended,
            "seconds": round(time.monotonic() - sub.started, 3),
        }})

    def _restore_checks(self) -> None:
        for path, (digest, data) in self.check_hashes.items():
            try:
                now = hashlib.sha256(Path(path).read_bytes()).hexdigest()
            except OSError:
                now = ""
            if now != digest:
                Path(path).write_bytes(data)
                print(f"streamcourse grade: {path} was changed during grading; restored it", file=sys.stderr)


def _reap(pid: int) -> int:
    for attempt in range(400):
        try:
            done, status = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            return 0
        if done:
            return status
        time.sleep(0.001 if attempt < 20 else 0.01)
    _kill_group(pid)
    try:
        return os.waitpid(pid, 0)[1]
    except ChildProcessError:
        return 0


def _kill_group(pid: int) -> None:
    for kill in (lambda: os.killpg(pid, signal.SIGKILL), lambda: os.kill(pid, signal.SIGKILL)):
        try:
            kill()
        except (ProcessLookupError, PermissionError, OSError):
            pass


def _become_subreaper() -> None:
    """Orphans of a child (a server it forked and left) come back to the engine, which kills them."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
    except Exception:  # noqa: BLE001 - not Linux: the process-group kill still applies
        pass


def _die_with_parent() -> None:
    """A child is killed when the engine dies (PR_SET_PDEATHSIG), whatever it is doing."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL, 0, 0, 0)
    except Exception:  # noqa: BLE001 - not Linux: the engine's own clean-up still applies
        pass
    if os.getppid() == 1:
        os._exit(72)


def _kill_descendants() -> None:
    try:
        import psutil

        for proc in psutil.Process().children(recursive=True):
            try:
                proc.kill()
            except psutil.Error:
                pass
        while True:
            try:
                if os.waitpid(-1, os.WNOHANG) == (0, 0):
                    break
            except ChildProcessError:
                break
    except Exception:  # noqa: BLE001
        pass


def _describe_exit(status: int) -> str:
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        name = signal.Signals(sig).name if sig in signal.Signals._value2member_map_ else str(sig)
        hint = {
            "SIGKILL": " (out of memory, or killed)",
            "SIGXCPU": " (used up its CPU time)",
            "SIGSEGV": " (a crash inside native code)",
            "SIGABRT": " (aborted)",
        }.get(name, "")
        return f"killed by {name}{hint}"
    if os.WIFEXITED(status):
        return f"the process exited with status {os.WEXITSTATUS(status)} (os._exit() or a crash?)"
    return "it stopped unexpectedly"


# --------------------------------------------------------------------------- the child (learner code runs here only)

_PYTEST_EXTRA = (
    "-p", "no:unraisableexception",  # its gc passes cost more than all of lab01's checks
    "-p", "no:threadexception",
    "-p", "no:junitxml",
    "-p", "no:pastebin",
    "-p", "no:doctest",
)


class _TimedOut(BaseException):
    """Raised by the alarm in the child; a BaseException so ``except Exception`` cannot swallow it."""


class _LearnerExit(BaseException):
    """Stands in for os._exit() in learner code."""


class _Capped(io.TextIOBase):
    """Keeps the first ``limit`` characters written; discards the rest (a flood of prints costs nothing)."""

    def __init__(self, limit: int) -> None:
        self.limit, self.kept = limit, []
        self.size = 0

    def write(self, text: str) -> int:
        if self.size < self.limit:
            piece = str(text)[: self.limit - self.size]
            self.kept.append(piece)
            self.size += len(piece)
        return len(text)

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return False


def _safe_str(exc: BaseException) -> str:
    try:
        text = str(exc)
    except BaseException:  # noqa: BLE001 - a hostile __str__
        text = "?"
    return (f"{type(exc).__name__}: {text}" if text else type(exc).__name__)[:MAX_MESSAGE]


class _Alarm:
    """A SIGALRM timer that raises only while armed."""

    def __init__(self) -> None:
        self.armed = False
        self.fired = False

    def handler(self, signum: int, frame: Any) -> None:
        if self.armed:
            self.armed = False
            self.fired = True
            raise _TimedOut()

    def install(self) -> None:
        signal.signal(signal.SIGALRM, self.handler)

    def arm(self, seconds: float) -> None:
        self.fired = False
        self.armed = True
        signal.setitimer(signal.ITIMER_REAL, max(0.01, seconds))

    def disarm(self) -> None:
        self.armed = False
        signal.setitimer(signal.ITIMER_REAL, 0)


class _Guard:
    """The child's audit hook: protects files, forbids spawning from learner code, notices tricks."""

    EVENTS = frozenset({
        "open", "os.remove", "os.rename", "os.rmdir", "os.mkdir", "os.chmod", "os.chown", "os.truncate",
        "os.link", "os.symlink", "os.utime", "shutil.rmtree", "shutil.copytree", "shutil.move",
        "subprocess.Popen", "os.system", "os.exec", "os.posix_spawn", "os.spawn", "os.fork", "os.forkpty", "pty.spawn",
        "ctypes.dlopen", "ctypes.dlsym", "ctypes.cdata", "ctypes.addressof", "ctypes.string_at",
        "gc.get_objects", "gc.get_referrers", "gc.get_referents", "sys._getframe", "sys._current_frames",
        "object.__getattr__", "sys.addaudithook", "import",
    })
    PATH_EVENTS = {"os.remove": (0,), "os.rename": (0, 1), "os.rmdir": (0,), "os.mkdir": (0,), "os.chmod": (0,),
                   "os.chown": (0,), "os.truncate": (0,), "os.link": (1,), "os.symlink": (1,), "os.utime": (0,),
                   "shutil.rmtree": (0,), "shutil.copytree": (1,), "shutil.move": (1,)}
    SPAWN = frozenset({"subprocess.Popen", "os.system", "os.exec", "os.posix_spawn", "os.spawn", "os.fork", "os.forkpty", "pty.spawn"})

    def __init__(self, protected: list[str], tmp: str, flag: Callable[[str], None]) -> None:
        self.protected = [os.path.realpath(p) for p in protected]
        self.tmp = os.path.realpath(tmp)
        self.flag = flag
        self.active = False
        self.cells = False  # True while notebook cells run (imports then are the learner's)
        self._busy: set[int] = set()
        import threading

        self._ident = threading.get_ident

    def __call__(self, event: str, args: tuple[Any, ...]) -> None:
        if event not in self.EVENTS or not self.active:
            return
        ident = self._ident()
        if ident in self._busy:
            return
        self._busy.add(ident)
        try:
            self._check(event, args, sys._getframe(1))
        finally:
            self._busy.discard(ident)

    @staticmethod
    def _learner(frame: Any) -> bool:
        return frame is not None and frame.f_code.co_filename.startswith(("<cell", "<extra"))

    def _any_learner(self, frame: Any) -> bool:
        depth = 0
        while frame is not None and depth < 60:
            if self._learner(frame):
                return True
            frame, depth = frame.f_back, depth + 1
        return False

    def _protected(self, path: Any) -> bool:
        if isinstance(path, int) or path is None:
            return False
        try:
            real = os.path.realpath(os.fsdecode(path))
        except (TypeError, ValueError):
            return False
        if real == self.tmp or real.startswith(self.tmp + os.sep):
            return False
        return any(real == p or real.startswith(p + os.sep) for p in self.protected)

    def _check(self, event: str, args: tuple[Any, ...], frame: Any) -> None:
        if event == "open":
            path, mode, flags = (list(args) + [None, None, None])[:3]
            writing = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
                mode is None and isinstance(flags, int) and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND)
            )
            if isinstance(path, (str, bytes)) and re.search(r"/proc/[^/]+/mem$", os.fsdecode(path)):
                self.flag("tried to open the process memory (/proc/.../mem)")
                raise PermissionError("the grader does not allow this")
            if writing and self._protected(path):
                self.flag(f"tried to write {os.fsdecode(path)} (the checks, the grades or a submission) — refused")
                raise PermissionError(f"the grader does not allow writing {os.fsdecode(path)}")
        elif event in self.PATH_EVENTS:
            for i in self.PATH_EVENTS[event]:
                if i < len(args) and self._protected(args[i]):
                    self.flag(f"tried {event} on {os.fsdecode(args[i])} — refused")
                    raise PermissionError("the grader does not allow changing this file")
        elif event in self.SPAWN:
            if self._any_learner(frame):
                self.flag(f"tried to start a process ({event}) — refused")
                raise PermissionError("the grader does not allow starting processes")
        elif event.startswith("ctypes."):
            if self._any_learner(frame):
                self.flag(f"used ctypes ({event})")
        elif event.startswith("gc.") or event == "sys._current_frames":
            if self._learner(frame):
                self.flag(f"called {event} (can find the grader's objects)")
        elif event == "sys._getframe":
            if self._learner(frame) or (
                frame is not None and frame.f_code.co_filename.endswith("inspect.py") and self._learner(frame.f_back)
            ):
                self.flag("reads interpreter frames (sys._getframe / inspect)")
        elif event == "object.__getattr__":
            if self._learner(frame) and len(args) > 1 and args[1] in ("tb_frame", "gi_frame", "cr_frame", "ag_frame", "f_back"):
                self.flag(f"reads .{args[1]} (interpreter frames)")
        elif event == "sys.addaudithook":
            if self._any_learner(frame):
                self.flag("added an audit hook")
        elif event == "import" and self.cells and args:
            name = str(args[0])
            if any(name == m or name.startswith(m + ".") for m in _MACHINERY) and self._any_learner(frame):
                self.flag(f"imported {name} while its notebook ran")


_PROTECTED_MODULE_PREFIXES = ("_pytest", "pytest", "pluggy", "pytest_asyncio", "streamcourse", "__main__", "builtins")


def _machinery_modules(hidden: list[str]) -> dict[str, Any]:
    """Modules whose contents learner code must not change: pytest, pluggy, this package, the checks."""
    roots = [str(CHECKS_DIR), *hidden]
    found = {}
    for name, module in list(sys.modules.items()):
        if module is None:
            continue
        file = str(getattr(module, "__file__", "") or "")
        if name.split(".")[0] in _PROTECTED_MODULE_PREFIXES or any(file.startswith(r) for r in roots):
            found[name] = module
    return found


class _Snapshot:
    """Module and class dictionaries as they were before learner code ran; ``restore`` puts them back."""

    def __init__(self, modules: dict[str, Any]) -> None:
        self.modules = dict(modules)
        self.dicts: list[tuple[str, Any, dict[str, Any]]] = []
        for name, module in modules.items():
            namespace = getattr(module, "__dict__", None)
            if not isinstance(namespace, dict):
                continue
            self.dicts.append((name, module, dict(namespace)))
            for attr, value in list(namespace.items()):
                if isinstance(value, type) and getattr(value, "__module__", None) == name:
                    self.dicts.append((f"{name}.{attr}", value, dict(vars(value))))

    def restore(self) -> list[str]:
        changed = []
        for name, module in self.modules.items():
            if sys.modules.get(name) is not module:
                changed.append(f"sys.modules[{name!r}]")
                sys.modules[name] = module
        for name, owner, saved in self.dicts:
            current = owner.__dict__
            diff = [k for k in set(saved) | set(current) if k not in ("__warningregistry__", "__annotations__")
                    and (k not in saved or k not in current or current[k] is not saved[k])
                    and not (k not in saved and isinstance(current[k], types.ModuleType))]  # a submodule imported
            if not diff:
                continue
            if name == "builtins" and all(k == "_" for k in diff):
                continue
            changed.append(f"{name}.{sorted(diff)[0]}" + (f" (+{len(diff) - 1} more)" if len(diff) > 1 else ""))
            for key in diff:
                try:
                    if key in saved:
                        setattr(owner, key, saved[key]) if isinstance(owner, type) else current.__setitem__(key, saved[key])
                    elif isinstance(owner, type):
                        delattr(owner, key)
                    else:
                        del current[key]
                except (AttributeError, TypeError):
                    pass
        return changed


def _child(job: dict[str, Any], wfd: int, token: str) -> None:
    """Grade one submission inside the forked child. Ends with os._exit; never returns normally."""
    real_exit = os._exit
    os.setpgid(0, 0)
    _die_with_parent()
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGCHLD):
        signal.signal(sig, signal.SIG_DFL)
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # an oversized file fails with an error instead of a kill
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    os.closerange(3, wfd)
    os.closerange(wfd + 1, 1 << 16)

    import resource

    limits = Limits(**job["limits"])
    mib = 1024 * 1024
    for name, soft, hard in (
        ("RLIMIT_CORE", 0, 0),
        ("RLIMIT_FSIZE", limits.file_mb * mib, limits.file_mb * mib),
        ("RLIMIT_CPU", job["cpu"], job["cpu"] + 2),
        ("RLIMIT_AS", job["vms"] + limits.memory_mb * mib if job["vms"] else None, None),
    ):
        if soft is None:
            continue
        try:
            resource.setrlimit(getattr(resource, name), (soft, hard if hard is not None else soft))
        except (ValueError, OSError, AttributeError):
            pass

    tmp = job["tmp"]
    os.chdir(tmp)
    keep = {k: v for k, v in os.environ.items() if k in ENV_KEEP or k.startswith("LC_")}
    os.environ.clear()
    os.environ.update(keep, HOME=tmp, TMPDIR=tmp, MPLBACKEND="Agg", PATH=keep.get("PATH", "/usr/bin:/bin"))
    tempfile.tempdir = tmp
    printed = _Capped(limits.output_kb * 1024)
    sys.stdout = sys.stderr = printed
    dumps = json.dumps

    def send(msg: dict[str, Any]) -> None:
        msg["t"] = token
        data = (dumps(msg, default=str) + "\n").encode("utf-8", "replace")
        while data:
            try:
                data = data[os.write(wfd, data):]
            except InterruptedError:
                continue
            except _TimedOut:
                continue
            except OSError:
                real_exit(71)

    sent_flags: set[str] = set()

    def flag(text: str) -> None:
        if text not in sent_flags and len(sent_flags) < MAX_FLAGS:
            sent_flags.add(text)
            send({"k": "flag", "text": text})

    guard = _Guard(job["protected"] + [str(Path(job["path"]).parent)], tmp, flag)
    sys.addaudithook(guard)
    guard.active = True
    alarm = _Alarm()
    alarm.install()

    from streamcourse import checking

    import streamcourse

    streamcourse.check = checking.check = checking._no_check  # type: ignore[assignment]

    def fake_exit(status: int = 0) -> None:
        raise _LearnerExit(f"os._exit({status}) was called")

    os._exit = fake_exit  # type: ignore[assignment]

    # ---- read the notebook
    path = job["path"]
    send({"k": "phase", "phase": "read"})
    fallback_lab = notebooks._LAB_IN_NAME.search(Path(path).name)
    try:
        alarm.arm(limits.cell_seconds)
        try:
            nb = notebooks.read(path)
        finally:
            alarm.disarm()
        lab = notebooks.lab_of(nb, path)
    except BaseException as exc:  # noqa: BLE001 - not JSON, not a notebook, too big, too deep...
        error = str(exc) if isinstance(exc, notebooks.NotebookError) else f"{Path(path).name} could not be read as a notebook ({_safe_str(exc)})"
        error = error.replace(str(path), Path(path).name)  # the learner sees their file's name, not the grader's disk
        send({"k": "lab", "lab": fallback_lab.group(1) if fallback_lab else None, "error": error})
        send({"k": "finished"})
        real_exit(0)
    if lab not in job["labs"]:
        send({"k": "lab", "lab": lab, "error": ""})
        send({"k": "finished"})
        real_exit(0)
    send({"k": "lab", "lab": lab})
    cells = [(i, s) for i, s in notebooks.code_cells(nb) if not notebooks.is_check_cell(s)]
    for text in scan_code(cells):
        flag(text)

    # ---- run the cells, each with a time limit; a failing cell is skipped, as in Jupyter
    snapshot = _Snapshot(_machinery_modules(job["hidden"]))
    import asyncio

    values: dict[str, Any] = {"__name__": "__main__", "check": checking._no_check}
    namespace = checking.Namespace(values, origin=Path(path).name)
    loop = asyncio.new_event_loop()
    skip = set(job["skip_cells"])
    guard.cells = True
    for index, source in cells:
        if index in skip:
            namespace.errors.append(checking.CellError(index, "skipped (it stopped or hung the grader before)"))
            continue
        send({"k": "phase", "phase": "cell", "key": index})
        names_before = set(values)
        try:
            alarm.arm(limits.cell_seconds)
            try:
                checking.run_cell(source, values, f"<cell {index}>", loop)
            finally:
                alarm.disarm()
        except _TimedOut:
            namespace.errors.append(checking.CellError(index, "did not finish in time"))
            send({"k": "cell", "index": index, "status": TIMED_OUT,
                  "error": f"cell {index} did not finish within {limits.cell_seconds:g} s and was stopped (an endless loop or a server that never returns?); the rest was graded"})
        except BaseException as exc:  # noqa: BLE001 - SystemExit, KeyboardInterrupt, MemoryError: all the learner's
            if isinstance(exc, MemoryError):  # free what the bomb holds, so the checks have memory to run in
                for name in set(values) - names_before:
                    values.pop(name, None)
                exc.__traceback__ = None
                import gc

                gc.collect()
            namespace.errors.append(checking.CellError(index, _safe_str(exc)))
            send({"k": "cell", "index": index, "status": ERROR, "error": f"cell {index} raised {_safe_str(exc)}"})
        finally:
            alarm.disarm()
    guard.cells = False
    sys.stdout = sys.stderr = printed
    alarm.install()
    for what in snapshot.restore():
        flag(f"changed the test machinery while its notebook ran: {what} (put back before checking)")

    # ---- run the checks, streaming each result
    send({"k": "phase", "phase": "collect"})
    plugin = _StreamPlugin(send, job["hidden"], set(job["skip_checks"]), alarm, limits.check_seconds, flag)
    exercises = job["labs"][lab]
    try:
        checking.run_checks(
            namespace,
            exercises,
            [Path(p) for p in _check_paths(lab, job["hidden"])],
            extra_args=["--basetemp", os.path.join(tmp, "pytest"), *_PYTEST_EXTRA],
            plugins=[plugin],
            output=printed,
        )
    except BaseException as exc:  # noqa: BLE001
        send({"k": "internal", "error": _safe_str(exc)})
    alarm.disarm()
    for what in snapshot.restore():
        flag(f"changed the test machinery while the checks ran: {what}")
    send({"k": "finished"})
    real_exit(0)


class _StreamPlugin:
    """pytest plugin (in the child): reports what was collected, each start and each result, as it happens."""

    def __init__(self, send: Callable[[dict[str, Any]], None], hidden: list[str], skip: Iterable[str] = (),
                 alarm: _Alarm | None = None, seconds: float = 0.0, flag: Callable[[str], None] | None = None) -> None:
        self.send, self.hidden, self.skip = send, [str(Path(h).resolve()) for h in hidden], set(skip)
        self.alarm, self.seconds, self.flag = alarm, seconds, flag or (lambda text: None)
        self.items: dict[str, dict[str, Any]] = {}
        self.outcome: dict[str, str] = {}
        self.timed_out: set[str] = set()
        self.async_checks: set[str] = set()
        self.awaited: set[str] = set()

    def _hidden(self, path: Any) -> bool:
        text = str(path)
        return any(text == h or text.startswith(h + os.sep) for h in self.hidden)

    @pytest.hookimpl(trylast=True)
    def pytest_collection_modifyitems(self, config: pytest.Config, items: list[pytest.Item]) -> None:
        dropped = [i for i in items if i.nodeid in self.skip]
        if dropped:
            items[:] = [i for i in items if i.nodeid not in self.skip]
            config.hook.pytest_deselected(items=dropped)
        for item in items:
            function = getattr(item, "obj", None)
            if inspect.iscoroutinefunction(function):
                self.async_checks.add(item.nodeid)
                item.obj = self._witness(function, item.nodeid)  # type: ignore[attr-defined]

    def _witness(self, function: Any, nodeid: str) -> Any:
        """Wrap an async check so that we know its body really ran (was awaited)."""
        awaited = self.awaited

        @functools.wraps(function)
        async def witnessed(*args: Any, **kwargs: Any) -> Any:
            awaited.add(nodeid)
            return await function(*args, **kwargs)

        return witnessed

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        from streamcourse.checking import exercise_of

        checks = []
        for item in session.items:
            info = {"nodeid": item.nodeid, "name": item.name, "exercise": exercise_of(item) or "",
                    "hidden": self._hidden(getattr(item, "path", ""))}
            self.items[item.nodeid] = info
            checks.append(info)
        self.send({"k": "collected", "checks": checks})

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if report.failed:
            from streamcourse.checking import failure_message

            self.send({"k": "internal", "error": f"checks could not be loaded: {report.nodeid}: {failure_message(report)}"[:MAX_MESSAGE]})

    def pytest_runtest_logstart(self, nodeid: str, location: Any) -> None:
        self.send({"k": "start", "nodeid": nodeid})

    def _timed(self, item: pytest.Item) -> Any:
        if self.alarm and self.seconds:
            self.alarm.arm(self.seconds)
        try:
            return (yield)
        except _TimedOut:
            self.timed_out.add(item.nodeid)
            raise _TimedOut(f"this check did not finish within {self.seconds:.1f} s") from None
        finally:
            if self.alarm:
                self.alarm.disarm()

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_setup(self, item: pytest.Item) -> Any:
        return (yield from self._timed(item))

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_call(self, item: pytest.Item) -> Any:
        return (yield from self._timed(item))

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_teardown(self, item: pytest.Item) -> Any:
        return (yield from self._timed(item))

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        from streamcourse.checking import failure_message

        nodeid = report.nodeid
        if report.when == "setup" and report.passed:
            return
        if report.when == "teardown" and (report.passed or self.outcome.get(nodeid) != PASSED):
            return
        hidden = bool(self.items.get(nodeid, {}).get("hidden"))
        if report.when == "call" and report.passed and nodeid in self.async_checks and nodeid not in self.awaited:
            status, message = FAILED, "this async check never ran (its coroutine was not awaited), so it cannot pass"
            self.flag(f"integrity: async check {nodeid} was never awaited")
        elif report.passed:
            status, message = PASSED, ""
        elif report.skipped:
            status, message = NOT_RUN, f"this check was skipped ({failure_message(report)}); a skipped check does not count as passed"
            self.flag(f"check {nodeid} was skipped: {failure_message(report)[:200]}")
        elif nodeid in self.timed_out:
            status, message = TIMED_OUT, f"this check did not finish within {self.seconds:.1f} s — does your code loop forever or wait for something that never comes?"
        else:
            message = failure_message(report)
            crash = getattr(report.longrepr, "reprcrash", None)
            kind = str(crash.message).split(":", 1)[0].strip() if crash is not None else "Failed"
            if kind == "MemoryError":
                message = "ran out of memory (MemoryError): does your code keep everything it reads, or never stop?"
            if "did not finish within" in message:
                status = TIMED_OUT
            elif kind not in ("AssertionError", "Failed") and _in_learner_code(report):
                status = ERROR
            elif report.when == "setup":
                status = CHECK_BROKE
            else:
                status = FAILED
            if hidden and status in (FAILED, CHECK_BROKE) and kind not in ("AssertionError", "Failed"):
                message = HIDDEN_GENERIC  # an exception inside a hidden check says nothing a learner should see
        self.outcome[nodeid] = status
        if hidden and status != PASSED:
            message = _hide(message, self.hidden)
        self.send({"k": "result", "nodeid": nodeid, "status": status, "message": message[:MAX_MESSAGE],
                   "seconds": round(report.duration, 4)})


def _in_learner_code(report: Any) -> bool:
    traceback = getattr(report.longrepr, "reprtraceback", None)
    for entry in getattr(traceback, "reprentries", None) or []:
        location = getattr(entry, "reprfileloc", None)
        if location is not None and str(location.path).startswith(("<cell", "<extra")):
            return True
    return False


def _hide(message: str, hidden: list[str]) -> str:
    """A hidden check's failure in words only: never its code, never where it lives."""
    text = message.strip()
    for directory in hidden:
        text = text.replace(directory, "<hidden>")
    if not text or text.startswith(("assert ", "AssertionError", "a check failed")) or "<hidden>" in text or "\n" in text and "assert" in text:
        return HIDDEN_GENERIC
    return text


if __name__ == "__main__":
    sys.exit(_engine_main())
