"""Run a real uvicorn server inside the notebook's own process.

Why a thread and not ``await server.serve()`` in the kernel: the kernel's event
loop is busy running cells, and a cell that awaits a server never finishes. A
daemon thread with its own event loop keeps the kernel free, and ordinary
clients (httpx, the openai SDK, a browser) reach the server through a real
socket on 127.0.0.1 — no ``nest_asyncio`` needed.

Re-running a cell that calls ``serve(app, name="x")`` stops the earlier server
called "x" first, so a notebook never fails with "address already in use".
"""

from __future__ import annotations

import html
import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import uvicorn

__all__ = ["Server", "ElsewhereServer", "Served", "serve", "running", "stop_all", "register", "unregister"]

#: Seconds a stopping server waits for open responses before cancelling them.
#: Without a bound, one endless stream keeps uvicorn from ever stopping.
GRACEFUL_SHUTDOWN_SECONDS = 0.5


class Running(Protocol):
    """Anything this kernel runs under a name: a server, a group of worker processes, a Redis server."""

    name: str

    def stop(self) -> None: ...


_running: dict[str, Running] = {}
_lock = threading.Lock()


def register(handle: Running) -> None:
    """Track ``handle`` under its name (stop_all() stops it); stop the earlier holder of that name first."""
    previous = _running.get(handle.name)
    if previous is not None and previous is not handle:
        previous.stop()
    with _lock:
        _running[handle.name] = handle


def unregister(handle: Running) -> None:
    """Forget ``handle`` once it has stopped (a newer holder of its name stays)."""
    with _lock:
        if _running.get(handle.name) is handle:
            del _running[handle.name]


@dataclass(repr=False)
class Server:
    """A running in-process server: use ``.url`` from kernel code, ``.link`` in a browser."""

    name: str
    port: int
    root_path: str
    _uvicorn: uvicorn.Server = field(repr=False)
    _thread: threading.Thread = field(repr=False)
    _socket: socket.socket = field(repr=False)

    @property
    def url(self) -> str:
        """Base URL for code running in the kernel (always loopback, never the proxy)."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def link(self) -> str:
        """Base URL for the learner's browser: through jupyter-server-proxy on Binder."""
        return browser_url(self.port)

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop serving and wait for the thread, even with endless streams still open."""
        self._uvicorn.should_exit = True
        self._thread.join(timeout)
        if self._thread.is_alive():  # a handler blocked outside the event loop
            self._uvicorn.force_exit = True
            self._thread.join(timeout)
        self._socket.close()
        unregister(self)

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _repr_html_(self) -> str:
        state = "running" if self.running else "stopped"
        link = html.escape(self.link)
        return (
            f"<b>{html.escape(self.name)}</b> {state} on port {self.port} — "
            f'open <a href="{link}" target="_blank">{link}</a> '
            f'(API docs: <a href="{link}docs" target="_blank">{link}docs</a>)'
        )

    def __str__(self) -> str:
        state = "serving" if self.running else "stopped, was"
        return f"{self.name} {state} on {self.url} (browser: {self.link})"

    __repr__ = __str__


@dataclass(repr=False)
class ElsewhereServer:
    """A server another process runs for us on the same loopback (the learner's app, in the grader's sandbox)."""

    name: str
    port: int
    _stop: Callable[[], Any] = field(repr=False)
    _stopped: bool = field(default=False, repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def link(self) -> str:
        return browser_url(self.port)

    @property
    def running(self) -> bool:
        return not self._stopped

    def stop(self, timeout: float = 5.0) -> None:
        if not self._stopped:
            self._stopped = True
            try:
                self._stop()
            except (ConnectionError, TimeoutError):
                pass  # the process that served it is gone: so is the server
        unregister(self)

    def __enter__(self) -> ElsewhereServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __str__(self) -> str:
        return f"{self.name} {'serving' if self.running else 'stopped, was'} on {self.url}"

    __repr__ = __str__


#: What ``serve`` returns: a server of this process, or one another process runs for it.
Served = Server | ElsewhereServer


def proxy_prefix() -> str | None:
    """The JupyterHub/Binder prefix under which jupyter-server-proxy serves ports, if any."""
    prefix = os.environ.get("JUPYTERHUB_SERVICE_PREFIX")
    if not prefix:
        return None
    return prefix if prefix.endswith("/") else prefix + "/"


def browser_url(port: int) -> str:
    """Where a browser reaches ``port``: directly on a laptop, through the proxy on Binder."""
    prefix = proxy_prefix()
    if prefix is None:
        return f"http://127.0.0.1:{port}/"
    return f"{prefix}proxy/{port}/"


def serve(app: Any, name: str = "app", *, log_level: str = "warning") -> Server | ElsewhereServer:
    """Start ``app`` on 127.0.0.1 (a free port) in a daemon thread; replaces a server of the same name.

    An app that lives in another process (a learner's, seen from the grader's
    checker) is served there, on the same loopback, and reached the same way.
    """
    previous = _running.get(name)
    if previous is not None:
        previous.stop()  # frees the name (and the memory) before the new server starts
    elsewhere = getattr(type(app), "__streamcourse_serve__", None)
    if elsewhere is not None:
        served: ElsewhereServer = elsewhere(app, name)
        register(served)
        return served

    # IPPROTO_TCP, not the default 0: asyncio turns Nagle off (TCP_NODELAY) only on
    # connections whose socket says proto == IPPROTO_TCP. Without it every answer
    # written in two pieces (headers, then body) waits ~40 ms for a delayed ACK.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    prefix = proxy_prefix()
    # Behind jupyter-server-proxy the app lives under .../proxy/<port>; root_path
    # lets /docs point the browser at the right openapi.json.
    root_path = f"{prefix}proxy/{port}".rstrip("/") if prefix else ""

    config = uvicorn.Config(
        app,
        log_level=log_level,
        lifespan="auto",
        root_path=root_path,
        # typed int, but uvicorn hands it to asyncio.wait_for, which takes any number of seconds
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,  # type: ignore[arg-type]
    )
    server = uvicorn.Server(config)
    failure: list[BaseException] = []

    def run() -> None:
        try:
            server.run(sockets=[sock])
        except BaseException as exc:  # noqa: BLE001 - reported to the caller of serve()
            failure.append(exc)

    thread = threading.Thread(target=run, name=f"streamcourse-{name}", daemon=True)
    thread.start()
    while not server.started:
        if failure or not thread.is_alive():
            sock.close()
            raise RuntimeError(f"server {name!r} failed to start: {failure[0] if failure else 'see the log above'}")
        time.sleep(0.001)

    handle = Server(name, port, root_path, server, thread, sock)
    register(handle)
    return handle


def running() -> dict[str, Running]:
    """What this kernel is running now, by name: servers, worker groups, Redis servers."""
    return dict(_running)


def stop_all() -> None:
    """Stop everything started with :func:`serve` (and the other :func:`register`-ed handles)."""
    for handle in list(_running.values()):
        handle.stop()
