"""Small process chores of the grading engine: kill a group, reap, describe an exit, adopt orphans.

Linux-specific calls go through ``prctl`` and degrade to nothing elsewhere (the
grader refuses to grade without its sandbox there anyway, unless told otherwise).
"""

from __future__ import annotations

import ctypes
import gc
import os
import signal
import time
from collections.abc import Callable

import psutil

__all__ = [
    "kill_group",
    "reap",
    "describe_exit",
    "become_subreaper",
    "die_with_parent",
    "kill_descendants",
    "freeze_heap",
]

PR_SET_PDEATHSIG, PR_SET_CHILD_SUBREAPER = 1, 36


def _prctl(option: int, value: int) -> None:
    try:
        prctl: Callable[..., int] = ctypes.CDLL(None, use_errno=True).prctl
        prctl(option, value, 0, 0, 0)
    except (OSError, AttributeError):  # not Linux: the engine's own clean-up still applies
        pass


def kill_group(pid: int) -> None:
    """SIGKILL the process group ``pid`` leads, and ``pid`` itself if it left the group."""
    for kill in (os.killpg, os.kill):
        try:
            kill(pid, signal.SIGKILL)
        except OSError:
            pass  # already gone


def reap(pid: int, seconds: float = 5.0) -> int:
    """Wait for child ``pid`` and return its status (0 when it was reaped elsewhere)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            done, status = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            return 0
        if done:
            return status
        time.sleep(0.005)
    kill_group(pid)
    try:
        return os.waitpid(pid, 0)[1]
    except ChildProcessError:
        return 0


def describe_exit(status: int) -> str:
    """A wait status in words an instructor can act on."""
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        name = signal.Signals(sig).name if sig in signal.Signals._value2member_map_ else str(sig)
        hint = {
            "SIGKILL": " (out of memory, or killed)",
            "SIGSEGV": " (a crash inside native code)",
            "SIGABRT": " (aborted)",
        }
        return f"was killed by {name}{hint.get(name, '')}"
    return f"exited with status {os.WEXITSTATUS(status)}"


def become_subreaper() -> None:
    """Orphans of a checker (a browser it started) come back to this process, which kills them."""
    _prctl(PR_SET_CHILD_SUBREAPER, 1)


def die_with_parent() -> None:
    """This process gets SIGKILL when its parent dies, whatever it is doing."""
    _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() == 1:
        os._exit(72)


def kill_descendants(keep: frozenset[int] = frozenset()) -> None:
    """Kill every process below this one but those in ``keep`` (and theirs), and reap them."""
    for child in psutil.Process().children():
        if child.pid in keep:
            continue
        try:
            family = [child, *child.children(recursive=True)]
        except psutil.Error:
            continue  # it ended by itself meanwhile
        for proc in family:
            try:
                proc.kill()
            except psutil.Error:
                pass  # it ended by itself meanwhile
    while True:
        try:
            if os.waitpid(-1, os.WNOHANG) == (0, 0):
                break
        except ChildProcessError:
            break


def freeze_heap() -> None:
    """Children forked from here share these pages, and their garbage collections skip them."""
    gc.collect()
    gc.freeze()
