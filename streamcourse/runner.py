"""Where a learner's notebook runs when it is graded: inside the sandbox, behind the channel.

The runner is started by ``streamcourse.isolation`` (bubblewrap) with one
inherited socket, the channel to its checker. It runs the notebook's code cells
with the course's one cell loop, reporting each cell as it starts and ends, then
answers the checker: it looks names up in the learner's namespace, calls the
learner's functions, drives the generators they return, serves the apps they
build, and runs ``streamcourse.harness`` builders beside them.

Nothing here is trusted. A learner can change any of it from a cell; all they
can change is what their own code answers. The checker decides pass or fail
from what it observes, and kills this process when it takes too long.
"""

from __future__ import annotations

import argparse
import builtins
import contextlib
import operator
import os
import resource
import signal
import socket
import sys
import threading
from collections.abc import Callable, Coroutine, Iterator
from typing import TYPE_CHECKING, Any

from streamcourse import cells, notebooks
from streamcourse.channel import Frames, Recipe
from streamcourse.peer import Peer, Policy

if TYPE_CHECKING:
    import asyncio

__all__ = ["main", "LearnerSide", "LearnerLoop"]


class CellTimeout(BaseException):
    """A cell ran past its time (a BaseException: a learner's ``except Exception`` must not swallow it)."""


def _op_throw(obj: Any, error: BaseException) -> Any:
    return obj.throw(error)


SYNC_OPS: dict[str, Callable[..., Any]] = {
    "getattr": lambda obj, name: getattr(obj, str(name)),
    "call": lambda obj, *args, **kwargs: obj(*args, **kwargs),
    "iter": iter,
    "aiter": lambda obj: obj.__aiter__(),
    "next": next,
    "send": lambda obj, value: obj.send(value),
    "throw": _op_throw,
    "close": lambda obj: obj.close(),
    "len": len,
    "bool": bool,
    "contains": operator.contains,
    "getitem": operator.getitem,
}


class LearnerSide(Policy):
    """The runner's policy: anything a check may ask of the learner's code."""

    def __init__(self, values: dict[str, Any], loop: LearnerLoop) -> None:
        self.values, self.loop = values, loop
        self.servers: dict[int, Any] = {}

    def loop_for(self, obj: Any) -> asyncio.AbstractEventLoop:
        return self.loop.get()

    def rebuild(self, recipe: Recipe) -> Any:
        if recipe.kind == "openai":
            import openai

            return openai.AsyncOpenAI(**recipe.settings)
        if recipe.kind == "exception":
            kind = getattr(builtins, str(recipe.settings.get("type")), RuntimeError)
            kind = kind if isinstance(kind, type) and issubclass(kind, Exception) else RuntimeError
            return kind(str(recipe.settings.get("message", "")))
        return super().rebuild(recipe)

    def run(self, op: str, obj: Any, args: list[Any], kwargs: dict[str, Any]) -> Any:
        if obj is None:
            return self._root(op, args, kwargs)
        if op not in SYNC_OPS:
            raise PermissionError(f"unknown operation {op!r}")
        return SYNC_OPS[op](obj, *args, **kwargs)

    async def arun(self, op: str, obj: Any, args: list[Any]) -> Any:
        if op == "anext":
            return await obj.__anext__()
        if op == "aclose":
            return await obj.aclose()
        if op == "asend":
            return await obj.asend(*args)
        if op == "athrow":
            return await obj.athrow(*args)
        if op == "await":
            return await obj
        raise PermissionError(f"unknown operation {op!r}")

    def _root(self, op: str, args: list[Any], kwargs: dict[str, Any]) -> Any:
        if op == "name":
            name = str(args[0])
            if name not in self.values:
                raise NameError(f"name {name!r} is not defined")
            return self.values[name]
        if op == "build":
            from streamcourse import harness

            name = str(args[0])
            if name not in harness.__all__:
                raise PermissionError(f"{name!r} is not a builder of streamcourse.harness")
            return getattr(harness, name)(*args[1:], **kwargs)
        if op == "serve":
            from streamcourse.server import serve

            server = serve(args[0], name=f"runner-{str(args[1])[:40]}")
            self.servers[server.port] = server
            return {"url": server.url, "port": server.port}
        if op == "serve_workers":
            from streamcourse.workers import serve_workers

            group = serve_workers(args[0], int(args[1]), name=f"runner-{str(args[2])[:40]}")
            self.servers[group.port] = group
            return {"port": group.port, "ports": group.ports}  # no pids: the checker finds the workers by their sockets
        if op == "stop":
            server = self.servers.pop(int(args[0]), None)
            if server is not None:
                server.stop()
            return None
        raise PermissionError(f"unknown operation {op!r}")


class LearnerLoop:
    """The event loop every async piece of learner code runs on (cells, generators, awaits), started on first use.

    Importing asyncio takes a runner longer than its notebook often does (60 ms
    here): a lab whose code never awaits never pays for it.
    """

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock = threading.Lock()

    def get(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None:
                import asyncio

                self._loop = asyncio.new_event_loop()
                threading.Thread(target=self._loop.run_forever, daemon=True, name="streamcourse-learner-loop").start()
            return self._loop


def _coroutine_runner(loop: LearnerLoop) -> Callable[[Coroutine[Any, Any, Any]], Any]:
    def run(coroutine: Coroutine[Any, Any, Any]) -> Any:
        import asyncio

        future = asyncio.run_coroutine_threadsafe(coroutine, loop.get())
        try:
            return future.result()
        except CellTimeout:
            future.cancel()
            raise

    return run


class CellClock:
    """A per-cell time limit inside the runner: cheap, and only a first line (the checker's clock is the real one)."""

    def __init__(self, seconds: float) -> None:
        self.seconds, self.armed = seconds, False
        signal.signal(signal.SIGALRM, self._expire)

    def _expire(self, signum: int, frame: Any) -> None:
        if self.armed:
            raise CellTimeout(f"did not finish within {self.seconds:g} s")

    def start(self, index: int) -> None:
        self.armed = True
        signal.setitimer(signal.ITIMER_REAL, self.seconds)

    def stop(self, index: int) -> None:
        self.armed = False
        signal.setitimer(signal.ITIMER_REAL, 0)


def run_notebook(
    peer: Peer, path: str, values: dict[str, Any], run: Callable[..., Any], skip: list[int], seconds: float
) -> None:
    """Read the notebook and run its code cells, telling the checker about each one."""
    try:
        lab, cells_of_notebook = notebooks.read_code(path)
    except Exception as exc:  # noqa: BLE001 - a notebook that cannot be read is an answer, not a crash
        message = str(exc) if isinstance(exc, notebooks.NotebookError) else cells.describe(exc)
        peer.notify("lab", {"lab": notebooks.lab_in_name(path), "error": message.replace(path, os.path.basename(path))})
        return
    peer.notify("lab", {"lab": lab, "error": ""})
    code = [(i, source) for i, source in cells_of_notebook if not notebooks.is_check_cell(source)]
    clock = CellClock(seconds)

    def before(index: int) -> None:
        peer.notify("cell-start", {"index": index})
        clock.start(index)

    stops = (CellTimeout, SystemExit, KeyboardInterrupt)  # each ends its own cell, as in Jupyter
    with address_space_reserve():
        for outcome in cells.run_cells(code, values, run, skip, before, clock.stop, catch=stops):
            peer.notify("cell", {"index": outcome.index, "error": outcome.error})


RESERVE_MB = 384  # what the checks' builders may still need after a cell filled memory (FastAPI, uvicorn, pydantic)


@contextlib.contextmanager
def address_space_reserve() -> Iterator[None]:
    """Keep some of the sandbox's address space back while the cells run, and give it to the checks after.

    A cell that fills memory (``while True: blocks.append(...)``) keeps what it got:
    without a reserve, the checks that follow could not even import FastAPI and the
    learner would lose points earned before that cell. The learner may raise the
    soft limit again; that only removes their own reserve, never the hard limit.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard == resource.RLIM_INFINITY:
        yield
        return
    resource.setrlimit(resource.RLIMIT_AS, (hard - min(RESERVE_MB * 2**20, hard // 4), hard))
    try:
        yield
    finally:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="streamcourse.runner")
    parser.add_argument("--channel", type=int, required=True)
    parser.add_argument("--notebook", required=True)
    parser.add_argument("--skip", default="")
    parser.add_argument("--cell-seconds", type=float, default=10.0)
    args = parser.parse_args(argv)
    for fd in (0, 1, 2):  # what the notebook prints goes nowhere: it is not graded, and may be endless
        os.dup2(os.open(os.devnull, os.O_RDWR), fd)
    loop = LearnerLoop()
    values: dict[str, Any] = {"__name__": "__main__", "check": cells.no_check}
    peer = Peer(Frames(socket.socket(fileno=args.channel)), LearnerSide(values, loop)).start()
    peer.notify("hello", {"pid": os.getpid()})
    skip = [int(i) for i in args.skip.split(",") if i.strip().isdigit()]
    run_notebook(peer, args.notebook, values, _coroutine_runner(loop), skip, args.cell_seconds)
    peer.notify("ready", {})
    peer.closed.wait()
    os._exit(0)  # never wait for threads the learner's code left running
    return 0  # pragma: no cover


if __name__ == "__main__":
    sys.exit(main())
