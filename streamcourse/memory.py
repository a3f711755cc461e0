"""Memory a check measures: the learner's process at its peak, and whoever serves a port.

Measured from outside wherever the learner's code runs elsewhere (the grader's
sandbox): code that patches an instrument inside its own process, or reports a
pid of its choosing, changes nothing.
"""

from __future__ import annotations

import os
import tracemalloc
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import psutil

__all__ = ["peak_memory_growth", "port_memory", "port_memory_growth"]


def peak_memory_growth(process: psutil.Process, run: Callable[[], Any]) -> int:
    """Bytes above its starting point that the learner's process held at its peak while ``run()`` ran.

    Where the learner's code runs in this very process (``check()`` in a kernel),
    ``tracemalloc`` counts Python's allocations exactly. Where it runs elsewhere
    (the grader's sandbox), its peak resident memory is read from outside
    (``/proc/<pid>/status``, after resetting the peak through ``clear_refs``), so
    code that patches an instrument inside its own process changes nothing.
    Compare two runs of different sizes, never one run with a constant.
    """
    if process.pid == os.getpid():
        tracemalloc.start()
        try:
            run()
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    Path(f"/proc/{process.pid}/clear_refs").write_text("5")  # the peak (VmHWM) starts again from now
    before = _status_kib(process.pid, "VmRSS")
    run()
    return max(0, _status_kib(process.pid, "VmHWM") - before) * 1024


def port_memory(port: int, also: Iterable[int] = ()) -> dict[int, int]:
    """Private memory (USS) of each process below this one that holds a TCP socket on ``port``, and of ``also``.

    The processes are found from here, by their sockets (the listening one, or a
    connection it accepted): when grading, no pid the learner's code reports is
    believed. Pass the pids of an earlier reading as ``also``, so a process that
    let go of the port is still measured; compare with :func:`port_memory_growth`.
    """
    found: dict[int, int] = {}
    for process in psutil.Process().children(recursive=True):
        try:
            if process.pid in also or any(
                c.laddr and c.laddr.port == port for c in process.net_connections(kind="tcp")
            ):
                found[process.pid] = process.memory_full_info().uss
        except psutil.Error:
            continue  # it ended meanwhile, or is not ours to read
    return found


def port_memory_growth(before: dict[int, int], after: dict[int, int]) -> int:
    """How much the processes of ``after`` grew since ``before``; a new one counts whole, and none offsets another."""
    return sum(max(0, uss - before.get(pid, 0)) for pid, uss in after.items())


def _status_kib(pid: int, field_name: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field_name + ":"):
            return int(line.split()[1])
    raise LookupError(f"no {field_name} in /proc/{pid}/status")
