"""Serve one app from several real worker processes, as ``uvicorn --workers N`` does.

``serve_workers(app, 4)`` forks four processes from the caller (a notebook
kernel, a check, a script). Each runs its own uvicorn server with its own event
loop on its copy of ``app``. Why fork: an app defined in a notebook cell cannot
be imported by name, so ``uvicorn --workers`` (which imports ``module:app`` in
every worker) cannot serve it; a forked child already has it in memory. And it
is faithful: like uvicorn's workers, each process has its OWN copy of every
module-level object, so an in-process list of clients is per worker.

Every worker accepts on one shared listening socket (``.url``: the kernel
hands each new connection to whichever worker takes it, as behind a load
balancer) and on a socket of its own (``.urls[i]``), so a lesson or a check can
send a client to a chosen worker — for example, reconnect to a different one.

What a child does before serving, and why:

* leaves the caller's process group, so interrupting a Jupyter kernel (SIGINT
  to its group) does not stop the workers;
* closes every file descriptor it inherited except its sockets and stdio, so it
  holds no client connection or listening socket of the parent's open (a stream
  the kernel closes must really close);
* ``gc.freeze()``: inherited objects are never collected in the child, so none
  closes a descriptor number the child has reused;
* prints and logs into a pipe that a thread of the parent copies to the
  parent's ``sys.stderr`` (in Jupyter: the notebook; under ``check()`` or the
  grader: wherever they capture output), never through the kernel's own
  stream objects, which a forked child must not touch;
* watches a socket pair to the parent: ``stop()`` — or the parent's death —
  closes it, and the child shuts down, dropping its open connections at once
  (as a restarted worker does: clients reconnect); one still there after a
  deadline is killed.

Apps should open their connections (a Redis client, say) in each worker — in a
lifespan or on first use — never before ``serve_workers``: a connection opened
by the parent would be shared by all of them.
"""

from __future__ import annotations

import gc
import io
import os
import select
import signal
import socket
import sys
import threading
import time
import warnings
from dataclasses import dataclass, field
from typing import Any

import uvicorn

from streamcourse.server import (
    GRACEFUL_SHUTDOWN_SECONDS,
    ElsewhereServer,
    browser_url,
    register,
    running,
    unregister,
)

__all__ = ["Workers", "serve_workers"]

#: A child that has not stopped this long after being told to is killed.
STOP_DEADLINE_SECONDS = 5.0


@dataclass(repr=False)
class Workers:
    """N worker processes serving one app: ``.url`` is shared, ``.urls[i]`` reaches worker i only."""

    name: str
    port: int
    ports: list[int]
    pids: list[int]
    _controls: list[socket.socket] = field(repr=False)
    _exited: set[int] = field(default_factory=set, repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def urls(self) -> list[str]:
        return [f"http://127.0.0.1:{port}" for port in self.ports]

    @property
    def link(self) -> str:
        return browser_url(self.port)

    def alive(self) -> list[bool]:
        """Whether each worker process is still running."""
        return [pid not in self._exited and not self._reap(pid) for pid in self.pids]

    @property
    def running(self) -> bool:
        return all(self.alive())

    def _reap(self, pid: int) -> bool:
        try:
            done, _ = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:  # already reaped
            done = pid
        if done:
            self._exited.add(pid)
        return bool(done)

    def stop(self, timeout: float = STOP_DEADLINE_SECONDS) -> None:
        """Stop every worker, even with streams open; kill any still there after ``timeout`` s."""
        for control in self._controls:
            control.close()  # the child sees EOF and shuts down
        deadline = time.monotonic() + timeout
        while not all(pid in self._exited or self._reap(pid) for pid in self.pids):
            if time.monotonic() > deadline:
                for pid in self.pids:
                    if pid not in self._exited:
                        _kill(pid)
                        self._reap_blocking(pid)
                break
            time.sleep(0.01)
        unregister(self)

    def _reap_blocking(self, pid: int) -> None:
        try:
            os.waitpid(pid, 0)
        except ChildProcessError:
            pass
        self._exited.add(pid)

    def __enter__(self) -> Workers:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __str__(self) -> str:
        state = "serving" if self.running else "not all running,"
        return f"{self.name}: {len(self.pids)} workers {state} on {self.url} (each: {', '.join(self.urls)})"

    __repr__ = __str__


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _listening_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)  # see server.serve: TCP_NODELAY
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def _config(app: Any, log_level: str) -> uvicorn.Config:
    """Loaded in the parent, so every import happens there (a child never waits on an import lock)."""
    config = uvicorn.Config(
        app,
        log_level=log_level,
        lifespan="auto",
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,  # type: ignore[arg-type]
    )
    config.load()
    return config


@dataclass(repr=False)
class ElsewhereWorkers(ElsewhereServer):
    """Workers another process runs for us on the same loopback (the learner's app, in the grader's sandbox)."""

    ports: list[int] = field(default_factory=list)  # no pids: a check finds who serves a port by its sockets

    @property
    def urls(self) -> list[str]:
        return [f"http://127.0.0.1:{port}" for port in self.ports]


def serve_workers(
    app: Any, workers: int = 4, name: str = "workers", *, log_level: str = "warning", timeout: float = 10.0
) -> Workers | ElsewhereWorkers:
    """Serve ``app`` from ``workers`` forked processes; replaces whatever runs under ``name``."""
    elsewhere = getattr(type(app), "__streamcourse_serve_workers__", None)
    if elsewhere is not None:  # the learner's app, when grading: its own process forks the workers
        served: ElsewhereWorkers = elsewhere(app, workers, name)
        register(served)
        return served
    if not hasattr(os, "fork"):
        raise RuntimeError("serve_workers needs os.fork (Linux or macOS); on Windows use WSL")
    if workers < 1:
        raise ValueError(f"workers must be 1 or more, not {workers}")
    previous = running().get(name)
    if previous is not None:
        previous.stop()
    config = _config(app, log_level)
    shared = _listening_socket()
    own = [_listening_socket() for _ in range(workers)]
    controls, pids = [], []
    log_read, log_write = os.pipe()
    try:
        for index in range(workers):
            parent_end, child_end = socket.socketpair()
            pid = _fork()
            if pid == 0:  # the child never returns from here
                parent_end.close()
                _child_main(config, [shared, own[index]], child_end, log_write)
            child_end.close()
            controls.append(parent_end)
            pids.append(pid)
        threading.Thread(target=_relay, args=(log_read,), name=f"streamcourse-{name}-log", daemon=True).start()
        handle = Workers(name, shared.getsockname()[1], [s.getsockname()[1] for s in own], pids, controls)
        _wait_started(handle, timeout)
    finally:
        for sock in [shared, *own]:
            sock.close()  # the children hold them now
        os.close(log_write)
    register(handle)
    return handle


def _fork() -> int:
    with warnings.catch_warnings():
        # Python 3.12+ warns that forking a threaded process may deadlock the child.
        # Our child only runs code imported before the fork and takes no lock of
        # the parent's threads (logging re-creates its locks after a fork).
        warnings.simplefilter("ignore", DeprecationWarning)
        return os.fork()


def _relay(log_read: int) -> None:
    """Copy what the workers print to this process's sys.stderr, until the last worker is gone."""
    with open(log_read, "rb", buffering=0) as pipe:
        while chunk := pipe.read(1 << 16):
            try:
                sys.stderr.write(chunk.decode(errors="replace"))
                sys.stderr.flush()
            except (OSError, ValueError):  # sys.stderr closed (the interpreter is exiting)
                return


def _wait_started(handle: Workers, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    pending = dict(zip(handle._controls, handle.pids, strict=True))
    while pending:
        ready, _, _ = select.select(list(pending), [], [], max(0.0, deadline - time.monotonic()))
        if not ready:
            handle.stop()
            raise RuntimeError(f"{len(pending)} of {len(handle.pids)} workers did not start within {timeout:g} s")
        for control in ready:
            message = control.recv(4096).decode(errors="replace")
            if message != "started":
                handle.stop()
                raise RuntimeError(f"worker {pending[control]} failed to start: {message or 'it exited'}")
            del pending[control]


# --------------------------------------------------------------------------- in the child


def _child_main(config: uvicorn.Config, sockets: list[socket.socket], control: socket.socket, log: int) -> None:
    code = 1
    try:
        os.dup2(log, 1)
        os.dup2(log, 2)
        _detach_from_parent(keep={s.fileno() for s in sockets} | {control.fileno()})
        config.configure_logging()  # handlers on the fresh sys.stderr, not the parent's stream
        server = _WorkerServer(config)
        threading.Thread(target=_watch_parent, args=(server, control), daemon=True).start()
        server.run(sockets=sockets)  # a lifespan startup that fails ends in SystemExit
        code = 0
    except BaseException as exc:  # noqa: BLE001 - reported to the parent, then the child ends
        why = (
            "the app did not start: see its log above"
            if isinstance(exc, SystemExit)
            else f"{type(exc).__name__}: {exc}"
        )
        try:
            control.sendall(why.encode())
        except OSError:
            pass
    finally:
        os._exit(code)  # never run the parent's atexit handlers or finalizers


class _WorkerServer(uvicorn.Server):
    """A worker that stops drops its open streams at once, as a restarted worker does (clients reconnect).

    uvicorn alone waits ``timeout_graceful_shutdown`` for them, then cancels
    them and logs an error for each: noise in a notebook for a normal stop.
    """

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        for connection in list(self.server_state.connections):
            # abort, not close: close() would first flush what a frozen client never reads
            connection.transport.abort()  # the app sees http.disconnect: its streams end cleanly
        await super().shutdown(sockets)


def _detach_from_parent(keep: set[int]) -> None:
    os.setsid()  # out of the kernel's process group: "interrupt kernel" (SIGINT to the group) spares us
    signal.set_wakeup_fd(-1)  # the parent's event loop must not hear our signals
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_DFL)
    gc.freeze()
    _close_inherited(keep | {0, 1, 2})
    sys.stdout = io.TextIOWrapper(io.FileIO(1, "w", closefd=False), line_buffering=True)
    sys.stderr = io.TextIOWrapper(io.FileIO(2, "w", closefd=False), line_buffering=True)


def _close_inherited(keep: set[int]) -> None:
    folder = "/proc/self/fd" if os.path.isdir("/proc/self/fd") else "/dev/fd"
    for name in os.listdir(folder):
        fd = int(name)
        if fd not in keep:
            try:
                os.close(fd)
            except OSError:  # the descriptor listdir itself used
                pass


def _watch_parent(server: uvicorn.Server, control: socket.socket) -> None:
    """Tell the parent once serving; shut down when it closes the pair (stop() or its death)."""
    while not server.started:
        if server.should_exit:
            return
        time.sleep(0.005)
    control.sendall(b"started")
    while control.recv(1):
        pass
    server.should_exit = True
    time.sleep(STOP_DEADLINE_SECONDS)
    os._exit(1)  # a handler blocked outside the event loop
