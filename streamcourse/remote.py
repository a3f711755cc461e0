"""The learner's code, seen from the checker: the runner process, its channel, and what checks are given.

:class:`Runner` starts one runner in its sandbox (``streamcourse.isolation``)
and holds the channel to it; :class:`CheckSide` is the checker's policy on that
channel (it drives what a check lent, nothing else); :class:`RemoteSubmission`
is what the ``submission`` fixture hands a check when grading — names looked up
in the learner's namespace over the channel, the runner's process for
measurements made from outside, and ``build`` for harness builders.
"""

from __future__ import annotations

import asyncio
import queue
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import pytest

from streamcourse import isolation
from streamcourse.channel import Frames, Handle, Recipe
from streamcourse.peer import Peer, Policy, abilities_of
from streamcourse.proxy import LearnerError, Proxy
from streamcourse.records import CellRecord, Limits

__all__ = ["CheckSide", "NotebookState", "Runner", "RemoteSubmission", "START_SECONDS"]

START_SECONDS = 20.0  # a runner must say hello (Python started, notebook read) within this


class CheckSide(Policy):
    """The checker's policy: drive what a check lent, and nothing else."""

    def describe(self, obj: Any) -> Handle | Recipe | None:
        kind = type(obj)
        if kind.__module__.startswith("openai") and kind.__name__ == "AsyncOpenAI":
            timeout = obj.timeout if isinstance(obj.timeout, (int, float)) else None
            return Recipe(
                "openai",
                {
                    "base_url": str(obj.base_url),
                    "api_key": str(obj.api_key),
                    "max_retries": int(obj.max_retries),
                    "timeout": timeout,
                },
            )
        if isinstance(obj, BaseException):
            return Recipe("exception", {"type": kind.__name__, "message": str(obj)})
        if not abilities_of(obj) & {"call", "next", "anext", "iter", "aiter"}:
            raise TypeError(
                f"a check can pass the learner's code plain data, iterators and callables, not {kind.__name__}"
            )
        return None

    def loop_for(self, obj: Any) -> asyncio.AbstractEventLoop:
        try:
            return asyncio.get_running_loop()
        except RuntimeError:
            raise TypeError("pass async iterators to the learner's code from an async check") from None

    def run(self, op: str, obj: Any, args: list[Any], kwargs: dict[str, Any]) -> Any:
        if obj is not None:
            if op == "call" and callable(obj):
                return obj(*args, **kwargs)
            if op == "next":
                return next(obj)
            if op == "iter":
                return iter(obj)
            if op in ("send", "throw", "close") and hasattr(obj, op):
                return getattr(obj, op)(*args)
        raise PermissionError(f"the checker does not {op} for the learner's code")

    async def arun(self, op: str, obj: Any, args: list[Any]) -> Any:
        if op == "anext":
            return await obj.__anext__()
        if op in ("aclose", "asend", "athrow") and hasattr(obj, op):
            return await getattr(obj, op)(*args)
        raise PermissionError(f"the checker does not {op} for the learner's code")

    def serve(self, app: Proxy, name: str) -> Any:
        from streamcourse.server import ElsewhereServer

        peer = app._peer
        served = peer.call("serve", None, app, name, timeout=30)
        return ElsewhereServer(name, int(served["port"]), lambda: peer.call("stop", None, served["port"], timeout=10))

    def serve_workers(self, app: Proxy, workers: int, name: str) -> Any:
        from streamcourse.workers import ElsewhereWorkers

        peer = app._peer
        served = peer.call("serve_workers", None, app, workers, name, timeout=60)
        return ElsewhereWorkers(
            name,
            int(served["port"]),
            lambda: peer.call("stop", None, served["port"], timeout=15),
            ports=[int(port) for port in served["ports"]],
        )


# --------------------------------------------------------------------------- one runner


@dataclass
class NotebookState:
    """What the runner said about the notebook while running it."""

    lab: str | None = None
    unreadable: str = ""
    cells: dict[int, CellRecord] = field(default_factory=dict)
    errors: list[tuple[int, str]] = field(default_factory=list)  # cells that raised, for "not defined" advice


class Runner:
    """One sandboxed runner process and the channel to it."""

    def __init__(self, notebook: Path, shared: Path, limits: Limits, isolated: bool, slot: int) -> None:
        self.notebook, self.shared, self.limits, self.isolated, self.slot = notebook, shared, limits, isolated, slot
        self.events: queue.Queue[tuple[str, Any]] = queue.Queue()
        self.process: subprocess.Popen[bytes] | None = None
        self.peer: Peer | None = None
        self.ended = ""  # how the last runner ended, for messages
        self._pid: int | None = None  # the runner's Python, once found (finding it reads every process of the machine)

    def start(self, skip: list[int]) -> None:
        mine, theirs = socket.socketpair()
        command = self._command(theirs.fileno(), skip)
        self._pid = None
        self.process = subprocess.Popen(  # noqa: S603 - the sandbox command this module builds
            command,
            pass_fds=[theirs.fileno()],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        theirs.close()
        self.peer = Peer(Frames(mine), CheckSide(), on_event=lambda kind, data: self.events.put((kind, data))).start()

    def _command(self, fd: int, skip: list[int]) -> list[str]:
        cell = self.limits.cell_seconds
        if self.isolated:
            return isolation.runner_command(self.notebook, self.shared, fd, self.limits.sandbox, self.slot, skip, cell)
        return [
            sys.executable,
            "-I",
            "-c",
            isolation.BOOT,
            "--channel",
            str(fd),
            "--notebook",
            str(self.notebook),
            "--skip",
            ",".join(map(str, skip)),
            "--cell-seconds",
            f"{cell:g}",
        ]

    def next_event(self, seconds: float) -> tuple[str, Any] | None:
        """The runner's next report, or None when none came within ``seconds`` (or it died)."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                return self.events.get(timeout=0.05)
            except queue.Empty:
                if self.peer is None or self.peer.closed.is_set():
                    return None
        return None

    @property
    def channel(self) -> Peer:
        """The peer that talks to this runner (once started)."""
        if self.peer is None:
            raise RuntimeError("the runner was never started")
        return self.peer

    @property
    def pid(self) -> int:
        """The runner's own Python process, as this side sees it (bwrap, its reaper, then Python).

        Found from here, never from what the runner says. The learner's code may
        start other Pythons, but only after the runner: inside the sandbox's own pid
        namespace, which counts from 1 for each runner, theirs have higher pids.
        """
        if self.process is None:
            raise RuntimeError("the runner was never started")
        if self._pid is not None:
            return self._pid
        try:
            tree = psutil.Process(self.process.pid).children(recursive=True)
        except psutil.Error:
            return self.process.pid
        pythons = [p for p in tree if _cmdline(p)[:2] == [sys.executable, "-I"]]
        if not pythons:
            return self.process.pid
        self._pid = min(pythons, key=_inner_pid).pid
        return self._pid

    @property
    def alive(self) -> bool:
        return (
            self.process is not None
            and self.process.poll() is None
            and self.peer is not None
            and not self.peer.closed.is_set()
        )

    def stop(self) -> str:
        """Kill the whole sandbox; returns how it ended, for messages."""
        if self.peer is not None:
            self.peer.close()
        if self.process is None:
            return ""
        if self.process.poll() is None:
            self.process.kill()  # bwrap dies, and --die-with-parent takes every process of the sandbox with it
        self.ended = _describe_exit(self.process.wait())
        return self.ended


def _inner_pid(process: psutil.Process) -> int:
    """The pid ``process`` has in its innermost pid namespace (its own pid where there is only one)."""
    try:
        with open(f"/proc/{process.pid}/status") as status:
            line = next((text for text in status if text.startswith("NSpid:")), "")
        return int(line.split()[-1])
    except (OSError, ValueError, IndexError):
        return process.pid


def _cmdline(process: psutil.Process) -> list[str]:
    try:
        return process.cmdline()
    except psutil.Error:
        return []


def _describe_exit(status: int) -> str:
    """Popen's return code in words; bwrap passes on its child's death by a signal as 128 + the signal."""
    number = -status if status < 0 else status - 128 if status > 128 else 0
    if number:
        name = signal.Signals(number).name if number in signal.Signals._value2member_map_ else str(number)
        return f"killed by {name}"
    return f"exited with status {status}"


# --------------------------------------------------------------------------- the learner's code, from here


class RemoteSubmission:
    """What the ``submission`` fixture gives a check when grading: the learner's code, across the channel."""

    def __init__(self, runner: Runner, state: NotebookState) -> None:
        self._runner, self._state = runner, state

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        try:
            return self._runner.channel.call("name", None, name, timeout=30)
        except LearnerError as exc:
            if not isinstance(exc, NameError):
                raise
        advice = f"`{name}` is not defined: run the exercise cell that defines it (and the cells above it), then check again."
        if self._state.errors:
            index, error = self._state.errors[0]
            advice += f" Note: cell {index} of {self._runner.notebook.name} raised {error}"
        pytest.fail(advice, pytrace=False)

    def __contains__(self, name: str) -> bool:
        try:
            getattr(self, name)
        except pytest.fail.Exception:
            return False
        return True

    @property
    def process(self) -> psutil.Process:
        return psutil.Process(self._runner.pid)

    def build(self, builder: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        if getattr(builder, "__module__", None) != "streamcourse.harness":
            raise pytest.UsageError(f"submission.build takes builders from streamcourse.harness, not {builder!r}")
        return self._runner.channel.call("build", None, builder.__name__, *args, timeout=30, **kwargs)
