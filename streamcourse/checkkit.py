"""Helpers for check authors: the pieces several check files needed a copy of.

The same checks run in a learner's kernel (``check()``), under pytest against
``solutions/``, and in the grader's trusted checker process. These helpers
observe only from the check's side — sockets, clocks read in the check's own
process, and the record of the embedded model the check started — so they mean
the same thing in all three places. The ``servers`` fixture that most of them
take lives in ``streamcourse.checking``, beside ``submission``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import httpx
import pytest
from httpx_sse import aconnect_sse

from streamcourse import browser, llm
from streamcourse.server import Served, serve

if TYPE_CHECKING:  # openai takes a second to import: only the LLM labs' checks need it
    import openai

__all__ = [
    "CLICK_CLOCK",
    "Model",
    "RawReply",
    "Reply",
    "Stop",
    "after_events",
    "chromium",
    "eventually",
    "page_time_to_monotonic",
    "wait_until",
    "raw_get",
    "read_events",
    "require_stream",
    "require_http_error_before_stream",
    "start_model",
    "unique_prompt",
]


# --------------------------------------------------------------------------- waiting for conditions


async def eventually(condition: Callable[[], bool], seconds: float, interval: float = 0.01) -> bool:
    """True as soon as ``condition()`` holds; False if it still does not after ``seconds``."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(interval)
    return True


def wait_until(condition: Callable[[], bool], seconds: float, interval: float = 0.01) -> bool:
    """:func:`eventually` for code that is not async."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)
    return True


# --------------------------------------------------------------------------- a click, timed in the page


#: A script for ``page.evaluate``: notes in ``window.__stopClickedAt`` (ms since the epoch) the moment a
#: button labelled Stop is clicked, from a capturing listener that runs before the page's own handlers.
#: Stop's effects are then timed from the click itself, not from when the check's thread got to it.
CLICK_CLOCK = """() => {
  window.__stopClickedAt = null;
  document.addEventListener("click", (e) => {
    const button = e.target.closest("button");
    if (button && /stop/i.test(button.textContent)) window.__stopClickedAt = performance.timeOrigin + performance.now();
  }, true);
}"""


def page_time_to_monotonic(epoch_ms: float) -> float:
    """A page's ``performance.timeOrigin + performance.now()`` on this process's ``time.monotonic()`` clock."""
    return epoch_ms / 1000 - (time.time() - time.monotonic())


# --------------------------------------------------------------------------- the bytes on the wire


@dataclass
class RawReply:
    """One HTTP/1.1 response as it crossed the socket: each chunk of a chunked body as the server framed it."""

    status: int
    headers: dict[str, str]
    chunks: list[bytes]  # a chunked body: one entry per chunk (the server sends one per body message)
    complete: bool  # the body ended properly (the last-chunk, or all of Content-Length)

    @property
    def body(self) -> bytes:
        return b"".join(self.chunks)


def raw_get(url: str, timeout: float = 10.0) -> RawReply:
    """GET ``url`` over a plain socket and keep the chunked framing that HTTP clients hide.

    uvicorn frames every non-empty ``http.response.body`` message as one chunk, so
    ``len(reply.chunks)`` counts the sends of the app — observed from outside it.
    """
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port or 80), timeout=timeout) as sock:
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        sock.sendall(f"GET {target} HTTP/1.1\r\nHost: {parts.netloc}\r\nConnection: close\r\n\r\n".encode())
        reader = sock.makefile("rb")
        status = int(reader.readline().split()[1])
        headers: dict[str, str] = {}
        while line := reader.readline().strip():
            name, _, value = line.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        if headers.get("transfer-encoding", "").lower() != "chunked":
            body = reader.read(int(headers.get("content-length", "0")))
            return RawReply(
                status, headers, [body] if body else [], len(body) == int(headers.get("content-length", "0"))
            )
        return RawReply(status, headers, *_read_chunks(reader))


def _read_chunks(reader: Any) -> tuple[list[bytes], bool]:
    chunks: list[bytes] = []
    while size_line := reader.readline():
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            return chunks, True
        chunks.append(reader.read(size))
        reader.readline()  # the CRLF after each chunk
    return chunks, False  # the connection closed before the last-chunk: a broken body


# --------------------------------------------------------------------------- a real browser


@contextlib.contextmanager
def chromium(*extra_args: str) -> Iterator[Any]:
    """Debian's Chromium, headless, driven by Playwright's sync API; skips the check, with the reason, where there is none.

    It runs where the check runs (the trusted side) and reaches the learner's app
    over its URL, like any other client of a check.
    """
    reason = browser.missing()
    if reason:
        pytest.skip(f"this check needs a real browser, and {reason}")
    from playwright.sync_api import sync_playwright

    # Chromium puts a Unix socket in $TMPDIR, and a socket's path must stay under 108 bytes:
    # the grader's checkers work in deep folders, so the browser gets a short one of its own.
    short_root = "/tmp" if os.path.isdir("/tmp") else None  # noqa: S108 - mkdtemp makes a private folder in it
    with tempfile.TemporaryDirectory(prefix="chr-", dir=short_root) as short, sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            **browser.launch_options(*extra_args), env={**os.environ, "TMPDIR": short}
        )
        try:
            yield launched
        finally:
            launched.close()


# --------------------------------------------------------------------------- servers a check starts


@dataclass
class Model:
    """The embedded OpenAI-compatible model a check started, and its record of every generation."""

    server: Served
    app: Any

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def generations(self) -> list[llm.Generation]:
        return list(self.app.state.generations)

    def client(self) -> openai.AsyncOpenAI:
        """A client for this model, to hand to the learner's code (no retries: a check sees every failure)."""
        import openai

        return openai.AsyncOpenAI(base_url=f"{self.url}/v1", api_key="not-needed", max_retries=0)

    def generation(self, prompt: str) -> llm.Generation:
        """The one generation this prompt started; fails when the learner's code asked the model twice or never."""
        found = [g for g in self.generations if prompt in g.prompt]
        assert found, "the model never received this request's prompt: pass the user's message on to the model"
        assert len(found) == 1, f"one request reached the model {len(found)} times: ask the model once per request"
        return found[0]


def start_model(servers: list[Served], name: str = "check-llm", **pacing: Any) -> Model:
    """Serve a fresh embedded model (``llm.make_app(**pacing)``) for one check."""
    app = llm.make_app(**pacing)
    server = serve(app, name=f"{name}-{uuid.uuid4().hex[:8]}")
    servers.append(server)
    return Model(server, app)


def unique_prompt(text: str = "Tell me about streams") -> str:
    """A prompt no other request of the run uses, so a check finds its own generation in the record."""
    return f"{text} ({uuid.uuid4().hex[:8]})"


# --------------------------------------------------------------------------- reading an event stream


@dataclass
class Reply:
    """What a client saw of one streamed answer."""

    status: int = 0
    headers: httpx.Headers = field(default_factory=httpx.Headers)
    events: list[tuple[str, str, float]] = field(default_factory=list)  # (event, data, arrival time)
    broken: str = ""  # how the connection broke, if it did
    body: str = ""  # the body, when the answer was not an event stream
    left_at: float | None = None  # when the check hung up, if it did
    prompt: str = ""  # the prompt the request carried, when the check set one (to find its generation)

    @property
    def names(self) -> list[str]:
        return [name for name, _, _ in self.events]

    @property
    def content_type(self) -> str:
        return str(self.headers.get("content-type", ""))

    def payload(self, index: int, *keys: str) -> dict[str, Any]:
        """The JSON object in event ``index``'s data, with ``keys``; a failure that shows the shape otherwise."""
        name, data, _ = self.events[index]
        try:
            value = json.loads(data)
            ok = isinstance(value, dict) and all(k in value for k in keys)
        except ValueError:
            ok = False
        if not ok:
            shape = ", ".join(f'"{k}": ...' for k in keys)
            pytest.fail(f"the {name} event's data must be JSON like {{{shape}}}; got {data!r}", pytrace=False)
        return value  # type: ignore[no-any-return]


#: Decides, after each event, whether the client hangs up now.
Stop = Callable[[Reply, httpx.AsyncClient], Awaitable[bool]]


def after_events(name: str, n: int) -> Stop:
    """Hang up once ``n`` events called ``name`` have arrived."""

    async def stop(reply: Reply, http: httpx.AsyncClient) -> bool:
        return reply.names.count(name) >= n

    return stop


async def read_events(
    url: str,
    json_body: Any = None,
    *,
    method: str = "POST",
    stop: Stop | None = None,
    timeout: float = 8.0,
    read_timeout: float = 3.0,
    hint: str = "does the stream end after its last event?",
) -> Reply:
    """Send one request and read its events with httpx-sse until the stream ends (or ``stop`` says hang up).

    ``read_timeout`` is how long a silent connection may go without a byte; ``timeout``
    bounds the whole answer, so a stream that never ends fails the check instead of hanging it.
    """
    reply = Reply()

    async def read() -> None:
        async with httpx.AsyncClient(timeout=read_timeout) as http:
            async with aconnect_sse(http, method, url, json=json_body) as source:
                reply.status = source.response.status_code
                reply.headers = source.response.headers
                if not reply.content_type.startswith("text/event-stream"):
                    reply.body = (await source.response.aread()).decode(errors="replace")
                    return
                async for event in source.aiter_sse():
                    reply.events.append((event.event, event.data, time.monotonic()))
                    if stop is not None and await stop(reply, http):
                        reply.left_at = time.monotonic()
                        return  # leaving the block closes the connection: the client is gone

    try:
        await asyncio.wait_for(read(), timeout)
    except TimeoutError:
        pytest.fail(
            f"the response to {method} {httpx.URL(url).path} did not end within {timeout:g} s "
            f"(events so far: {reply.names[:8]}) — {hint}",
            pytrace=False,
        )
    except httpx.HTTPError as exc:  # e.g. RemoteProtocolError: the server dropped the connection mid-stream
        reply.broken = f"{type(exc).__name__}: {exc}"
    return reply


def require_stream(reply: Reply) -> None:
    assert reply.status == 200 and reply.content_type.startswith("text/event-stream"), (
        f"expected 200 with Content-Type text/event-stream, got {reply.status} {reply.content_type!r} {reply.body[:200]!r}"
    )


def require_http_error_before_stream(reply: Reply, where: str) -> None:
    """The model refused (429) before streaming: the answer must be an HTTP error, not a 200 stream."""
    assert reply.status in (429, 502, 503), (
        f"when the model answers 429 before streaming, {where} should answer with an HTTP error (429 or 502); "
        f"got {reply.status} {reply.content_type!r} — once a 200 stream has started its status can't change, so "
        "open the upstream stream before the response starts (in a dependency), not inside the generator"
    )
    assert not reply.content_type.startswith("text/event-stream"), "an HTTP error has a JSON body, not an event stream"
