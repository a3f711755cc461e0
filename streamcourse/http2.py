"""Serve an app over HTTP/2 in the notebook's own process: hypercorn, TLS, a throwaway certificate.

Why another server: uvicorn speaks HTTP/1.1 only, and over HTTP/1.1 a browser opens
at most six connections to one origin — the seventh ``EventSource`` waits. Over
HTTP/2 every stream shares ONE connection, so that limit goes away. Browsers speak
HTTP/2 only over TLS (negotiated with ALPN), so :func:`serve_http2` makes a
self-signed certificate for 127.0.0.1 on the spot (``cryptography``); clients must
be told not to verify it: ``httpx.AsyncClient(http2=True, verify=False)``, or
Chromium's ``--ignore-certificate-errors``.

Like :func:`streamcourse.server.serve`, the server runs in a daemon thread with its
own event loop and listens on a free port of 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import socket
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from hypercorn.asyncio import serve
from hypercorn.config import Config

__all__ = ["Http2Server", "serve_http2", "self_signed_certificate"]

#: Seconds stop() lets open responses finish before it cancels them (an endless stream never finishes).
GRACE_SECONDS = 0.5


def self_signed_certificate(folder: Path) -> tuple[Path, Path]:
    """Write a one-day certificate and key for 127.0.0.1 and localhost into ``folder``."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    names = [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


@dataclass(repr=False)
class Http2Server:
    """A running hypercorn server: ``.url`` is ``https://127.0.0.1:<port>``."""

    port: int
    _thread: threading.Thread = field(repr=False)
    _loop: asyncio.AbstractEventLoop = field(repr=False)
    _stop: asyncio.Event = field(repr=False)
    _folder: tempfile.TemporaryDirectory[str] = field(repr=False)

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop serving and wait for the thread; responses still open after the grace are cancelled."""
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.set_exception_handler, _quiet)  # cuts from here on are ours
            self._loop.call_soon_threadsafe(self._stop.set)
            self._thread.join(GRACE_SECONDS + 0.5)
        if self._thread.is_alive():  # hypercorn still waits for connections with open streams: end them
            self._loop.call_soon_threadsafe(_cancel_connections, self._loop)
            self._thread.join(timeout)
        self._folder.cleanup()

    def __enter__(self) -> Http2Server:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __str__(self) -> str:
        return f"HTTP/2 server {'serving' if self.running else 'stopped, was'} on {self.url}"

    __repr__ = __str__


def serve_http2(app: Any) -> Http2Server:
    """Serve ``app`` over HTTP/2 (and HTTP/1.1 for clients that ask for it) with TLS on a free port."""
    folder = tempfile.TemporaryDirectory(prefix="streamcourse-h2-")
    cert, key = self_signed_certificate(Path(folder.name))
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    port = sock.getsockname()[1]
    config = Config()
    config.bind = [f"fd://{sock.detach()}"]  # hypercorn owns the socket now; we know its port already
    config.certfile, config.keyfile = str(cert), str(key)
    config.graceful_timeout = GRACE_SECONDS  # then stop() cancels what is still open
    config.accesslog = None
    config.errorlog = None
    loop = asyncio.new_event_loop()
    stop, started = asyncio.Event(), threading.Event()
    failure: list[BaseException] = []

    def run() -> None:
        asyncio.set_event_loop(loop)
        loop.set_exception_handler(_ignore_cut_connections)
        try:
            loop.call_soon(started.set)
            loop.run_until_complete(serve(app, config, shutdown_trigger=stop.wait))
        except BaseException as exc:  # noqa: BLE001 - reported to the caller below, which raises it
            failure.append(exc)
        finally:
            _cancel_leftovers(loop)
            loop.close()

    thread = threading.Thread(target=run, name="streamcourse-http2", daemon=True)
    thread.start()
    started.wait(5)
    server = Http2Server(port, thread, loop, stop, folder)
    _wait_until_listening(server, failure)
    return server


def _ignore_cut_connections(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    """A connection cancelled or reset while stopping is not news; anything else is reported as usual."""
    if not isinstance(context.get("exception"), (asyncio.CancelledError, ConnectionError)):
        loop.default_exception_handler(context)


def _quiet(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    """While stopping, connections end on purpose: nothing to report."""


def _cancel_connections(loop: asyncio.AbstractEventLoop) -> None:
    """Cancel every connection's task: hypercorn's shutdown waits for them (an endless stream never ends)."""
    for task in asyncio.all_tasks(loop):
        if getattr(task.get_coro(), "__qualname__", "").endswith("_server_callback"):
            task.cancel()


def _cancel_leftovers(loop: asyncio.AbstractEventLoop) -> None:
    """Cancel whatever is left and let it unwind, as asyncio.run does."""
    loop.set_exception_handler(_quiet)
    tasks = asyncio.all_tasks(loop)
    for task in tasks:
        task.cancel()
    if tasks:
        loop.run_until_complete(asyncio.wait(tasks, timeout=GRACE_SECONDS))


def _wait_until_listening(server: Http2Server, failure: list[BaseException]) -> None:
    """Return once a TLS handshake succeeds, so a client's first request never races the start."""
    import ssl
    import time

    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if failure or not server.running:
            raise RuntimeError(f"the HTTP/2 server failed to start: {failure[0] if failure else 'see the log above'}")
        try:
            with socket.create_connection(("127.0.0.1", server.port), timeout=1) as raw:
                with context.wrap_socket(raw, server_hostname="127.0.0.1"):
                    return
        except OSError:
            time.sleep(0.02)
    raise RuntimeError("the HTTP/2 server did not answer within 10 s")
