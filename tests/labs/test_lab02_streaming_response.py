"""Checks for lab 02 — StreamingResponse: ``csv_export``, ``ndjson_rows`` and ``proxy``.

Every check serves the learner's code with ``serve()`` and talks to it over a
real socket with httpx. Row and item sources are gated: they stop half-way and
wait for the check to say "go on", so a response that is built whole before
it is sent fails (instead of hanging). The proxy checks run their own upstream
server, whose async generator records the moment its ``finally`` ran — that is
how "the upstream request was closed" is proved at the upstream itself.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import re
import threading
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.responses import Response, StreamingResponse

from streamcourse.server import Server, serve

CSV = "lab02.csv_export"
NDJSON = "lab02.ndjson_rows"
PROXY = "lab02.proxy"

WAIT = 3.0  # seconds a check waits for a first byte before it calls the answer "not streaming"


@pytest.fixture
def servers() -> Iterator[list[Server]]:
    """Servers a check starts; all stopped when it ends (even when it fails)."""
    started: list[Server] = []
    yield started
    for server in started:
        server.stop()


def start(servers: list[Server], app: Any, name: str) -> Server:
    server = serve(app, name=f"check-lab02-{name}")
    servers.append(server)
    return server


async def first_chunk(response: httpx.Response, seconds: float = WAIT) -> bytes | None:
    """The first body bytes, or None if none arrive within ``seconds``."""
    try:
        return await asyncio.wait_for(anext(response.aiter_raw()), seconds)
    except (TimeoutError, StopAsyncIteration):
        return None


class Learner:
    """Calls the learner's function inside a route; what it raises is kept and re-raised in the check."""

    def __init__(self, fn: Any) -> None:
        self.fn = fn
        self.errors: list[BaseException] = []

    def call(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return self.fn(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - kept, and raised by raise_errors() in the check
            self.errors.append(exc)
            return Response("your function raised an exception", status_code=500)

    async def acall(self, *args: Any, **kwargs: Any) -> Any:
        try:
            result = self.fn(*args, **kwargs)
            if asyncio.iscoroutine(result):
                result = await result
            return result
        except Exception as exc:  # noqa: BLE001 - kept, and raised by raise_errors() in the check
            self.errors.append(exc)
            return Response("your function raised an exception", status_code=500)

    def raise_errors(self) -> None:
        if self.errors:
            raise self.errors[0]


def expect_ok(response: httpx.Response, learner: Learner) -> None:
    learner.raise_errors()
    assert response.status_code == 200, f"expected status 200, got {response.status_code}"


class Gate:
    """Lets a source run up to a point, then holds it until the check opens the gate (or 10 s pass)."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self.held = False

    def hold(self) -> None:
        self.held = True
        self.event.wait(10)

    async def ahold(self) -> None:
        self.held = True
        deadline = time.monotonic() + 10
        while not self.event.is_set() and time.monotonic() < deadline:
            await asyncio.sleep(0.005)

    def open(self) -> None:
        self.event.set()


# --------------------------------------------------------------------------- csv_export


TRICKY_ROWS = [
    (1, "plain", "text"),
    (2, "Smith, Jane", "has a comma"),
    (3, 'She said "hi"', "has quotes"),
    (4, "two\nlines", "has a newline"),
    (5, "café ☕", "not ASCII"),
    (6, "", "empty"),
    (7, " leading and trailing ", ',"\n'),
]


def gated_rows(gate: Gate, before: int = 5_000, after: int = 10) -> Iterator[tuple[int, str, str]]:
    """~200 KB of rows, then wait at the gate, then a few more."""
    for i in range(before):
        yield (i, f"user {i}", "x" * 24)
    gate.hold()
    for i in range(before, before + after):
        yield (i, f"user {i}", "x" * 24)


def csv_app(make_rows: Any, learner: Learner, filename: str = "report-2026.csv") -> FastAPI:
    app = FastAPI()

    @app.get("/export")
    def route() -> Response:  # a plain def: a blocking answer must not freeze the server's event loop
        return learner.call(make_rows(), header=("id", "name", "note"), filename=filename)

    return app


class CountSends:
    """ASGI middleware: how many body messages the app sends (one per `yield` of a stream)."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.sends = 0

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        async def counting(message: Any) -> None:
            if message["type"] == "http.response.body" and message.get("body"):
                self.sends += 1
            await send(message)

        await self.app(scope, receive, counting)


def parse_csv(body: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(body.decode("utf-8"), newline="")))


async def fetch(url: str, timeout: float = WAIT * 3) -> httpx.Response:
    async with httpx.AsyncClient(timeout=timeout) as client:
        return await client.get(url)


async def first_bytes(url: str) -> tuple[int, bytes | None]:
    """Status and the first body bytes of a streamed GET, or None when none arrive within WAIT."""
    async with httpx.AsyncClient(timeout=WAIT) as client:
        try:
            async with client.stream("GET", url) as response:
                return response.status_code, await first_chunk(response)
        except httpx.TimeoutException:
            return 0, None


@pytest.mark.exercise(CSV)
async def test_first_bytes_arrive_before_the_last_row_is_produced(submission, servers) -> None:
    gate, learner = Gate(), Learner(submission.csv_export)
    server = start(servers, csv_app(lambda: gated_rows(gate), learner), "csv")
    try:
        status, first = await first_bytes(f"{server.url}/export")
        learner.raise_errors()
        assert first and status == 200, (
            f"no bytes arrived within {WAIT:g} s while the last rows were still being produced: stream the CSV "
            "from a generator inside a StreamingResponse instead of building it whole first"
        )
    finally:
        gate.open()


@pytest.mark.exercise(CSV)
async def test_values_with_commas_quotes_and_newlines_are_quoted(submission, servers) -> None:
    learner = Learner(submission.csv_export)
    server = start(servers, csv_app(lambda: iter(TRICKY_ROWS), learner), "csv")
    response = await fetch(f"{server.url}/export")
    expect_ok(response, learner)
    got = parse_csv(response.content)
    expected = [["id", "name", "note"]] + [[str(v) for v in row] for row in TRICKY_ROWS]
    assert got == expected, (
        "read back with the csv module, the export should give the header and then every row unchanged — "
        "values with commas, quotes and newlines need quoting: write rows with csv.writer, not f-strings. "
        f"Got {got[:4]!r}…"
    )


@pytest.mark.exercise(CSV)
async def test_download_headers_say_csv_attachment_with_the_filename(submission, servers) -> None:
    learner = Learner(submission.csv_export)
    server = start(servers, csv_app(lambda: iter(TRICKY_ROWS[:2]), learner), "csv")
    response = await fetch(f"{server.url}/export")
    expect_ok(response, learner)
    content_type = response.headers.get("content-type", "")
    disposition = response.headers.get("content-disposition", "")
    assert content_type.startswith("text/csv"), f"Content-Type should be text/csv, not {content_type!r}"
    assert disposition.lower().startswith("attachment"), (
        f"Content-Disposition should start with 'attachment' so the browser downloads the file; got {disposition!r}"
    )
    assert re.search(r'filename="?report-2026\.csv"?', disposition), (
        f'Content-Disposition should carry the filename you were given (filename="report-2026.csv"); got {disposition!r}'
    )


@pytest.mark.exercise(CSV)
async def test_rows_are_sent_in_batches_not_one_send_per_row(submission, servers) -> None:
    n = 20_000
    learner = Learner(submission.csv_export)
    counted = CountSends(csv_app(lambda: ((i, f"user {i}", "x" * 24) for i in range(n)), learner))
    server = start(servers, counted, "csv")
    response = await fetch(f"{server.url}/export", timeout=30)
    expect_ok(response, learner)
    rows = len(parse_csv(response.content)) - 1
    assert rows == n, f"expected {n} rows after the header, got {rows}"
    most = len(response.content) // 8192 + 2
    assert counted.sends <= most, (
        f"{n} rows ({len(response.content) // 1024} KiB) took {counted.sends} sends: one send per row is many times "
        "slower. Collect rows in a buffer and yield chunks of about 64 KiB"
    )


# --------------------------------------------------------------------------- ndjson_rows


ITEMS: list[Any] = [
    {"id": 1, "name": "plain"},
    {"id": 2, "text": "two\nlines", "tags": ["a", "b"]},
    {"id": 3, "name": "café ☕", "nested": {"ok": True, "none": None}},
    [1, 2, 3],
    "a string",
    42,
]


async def items_from(values: list[Any], gate: Gate | None = None) -> AsyncIterator[Any]:
    for n, value in enumerate(values):
        if gate is not None and n == 1:
            await gate.ahold()
        yield value
        await asyncio.sleep(0)


def ndjson_app(make_items: Any, learner: Learner) -> FastAPI:
    app = FastAPI()

    @app.get("/items")
    async def route() -> Response:
        return learner.call(make_items())

    return app


@pytest.mark.exercise(NDJSON)
async def test_each_item_is_one_json_line_ending_in_a_newline(submission, servers) -> None:
    learner = Learner(submission.ndjson_rows)
    server = start(servers, ndjson_app(lambda: items_from(ITEMS), learner), "ndjson")
    response = await fetch(f"{server.url}/items")
    expect_ok(response, learner)
    body = response.content
    assert body.endswith(b"\n"), "every line, the last one too, must end with a newline ('\\n')"
    lines = body.decode("utf-8").split("\n")[:-1]
    assert len(lines) == len(ITEMS), (
        f"expected {len(ITEMS)} lines, one per item (json.dumps(item) + '\\n'); got {len(lines)}: {lines[:3]!r}"
    )
    try:
        got = [json.loads(line) for line in lines]
    except ValueError as exc:
        pytest.fail(f"every line must be one JSON document (use json.dumps, not str()): {exc}", pytrace=False)
    assert got == ITEMS, f"the lines, parsed, should equal the items in order; got {got!r}"


@pytest.mark.exercise(NDJSON)
async def test_first_line_arrives_before_the_source_is_finished(submission, servers) -> None:
    gate, learner = Gate(), Learner(submission.ndjson_rows)
    server = start(servers, ndjson_app(lambda: items_from(ITEMS, gate), learner), "ndjson")
    try:
        status, first = await first_bytes(f"{server.url}/items")
        learner.raise_errors()
        assert first and status == 200, (
            f"nothing arrived within {WAIT:g} s while the source still had items to give: yield each line "
            "as its item arrives (an async generator), do not collect them first"
        )
        assert first.startswith(b"{") and b"plain" in first, (
            f"the first line should be the first item; got {first[:80]!r}"
        )
    finally:
        gate.open()


@pytest.mark.exercise(NDJSON)
async def test_content_type_is_json_lines(submission, servers) -> None:
    learner = Learner(submission.ndjson_rows)
    server = start(servers, ndjson_app(lambda: items_from(ITEMS[:2]), learner), "ndjson")
    response = await fetch(f"{server.url}/items")
    expect_ok(response, learner)
    content_type = response.headers.get("content-type", "")
    assert content_type.split(";")[0].strip() in ("application/x-ndjson", "application/jsonl"), (
        f"Content-Type should be application/x-ndjson (or application/jsonl), not {content_type!r}"
    )


@pytest.mark.exercise(NDJSON)
async def test_an_empty_source_gives_an_empty_body(submission, servers) -> None:
    learner = Learner(submission.ndjson_rows)
    server = start(servers, ndjson_app(lambda: items_from([]), learner), "ndjson")
    response = await fetch(f"{server.url}/items")
    expect_ok(response, learner)
    assert response.content == b"", (
        f"no items means no lines at all (not '[]' or a blank line); got {response.content!r}"
    )


# --------------------------------------------------------------------------- proxy


class Upstream:
    """The service being proxied; it records when its endless stream's ``finally`` ran."""

    def __init__(self) -> None:
        self.gate = Gate()
        self.closed = threading.Event()
        self.closed_at = 0.0
        self.app = FastAPI()
        self.app.get("/report.csv")(self.report)
        self.app.get("/missing")(self.missing)
        self.app.get("/slow")(self.slow)
        self.app.get("/endless")(self.endless)

    async def report(self) -> Response:
        async def body() -> AsyncIterator[bytes]:
            for i in range(2_000):
                yield f"{i},row {i},\xe9\n".encode()

        return StreamingResponse(body(), media_type="text/csv; charset=utf-8")

    async def missing(self) -> Response:
        return Response(b'{"title": "no such report"}', status_code=404, media_type="application/problem+json")

    async def slow(self) -> Response:
        async def body() -> AsyncIterator[bytes]:
            yield b"first part\n"
            await self.gate.ahold()
            yield b"second part\n"

        return StreamingResponse(body(), media_type="text/plain; charset=utf-8")

    async def endless(self) -> Response:
        async def body() -> AsyncIterator[bytes]:
            try:
                yield b"tick\n"
                while True:
                    await asyncio.sleep(30)  # silent: the proxy hears nothing more from upstream
                    yield b"tick\n"
            finally:
                self.closed_at = time.perf_counter()
                self.closed.set()

        return StreamingResponse(body(), media_type="text/plain; charset=utf-8")


def proxied(servers: list[Server], learner: Learner, path: str) -> tuple[Upstream, Server]:
    upstream = Upstream()
    up = start(servers, upstream.app, "upstream")
    app = FastAPI()

    @app.get("/proxy")
    async def route() -> Response:
        return await learner.acall(f"{up.url}{path}")

    return upstream, start(servers, app, "proxy")


@pytest.mark.exercise(PROXY)
async def test_status_and_content_type_are_passed_through(submission, servers) -> None:
    learner = Learner(submission.proxy)
    upstream, front = proxied(servers, learner, "/missing")
    got = await fetch(f"{front.url}/proxy")
    learner.raise_errors()
    assert got.status_code == 404, f"the upstream answered 404; the proxy should answer 404 too, not {got.status_code}"
    assert got.headers.get("content-type") == "application/problem+json", (
        f"pass the upstream's Content-Type through (application/problem+json); got {got.headers.get('content-type')!r}"
    )
    assert got.content == b'{"title": "no such report"}', (
        f"the body should be the upstream's body; got {got.content[:80]!r}"
    )


@pytest.mark.exercise(PROXY)
async def test_a_streamed_body_arrives_whole_and_unchanged(submission, servers) -> None:
    learner = Learner(submission.proxy)
    upstream, front = proxied(servers, learner, "/report.csv")
    got = await fetch(f"{front.url}/proxy")
    expect_ok(got, learner)
    expected = "".join(f"{i},row {i},\xe9\n" for i in range(2_000)).encode()
    assert got.headers.get("content-type", "").startswith("text/csv"), (
        f"pass the upstream's Content-Type through (text/csv; charset=utf-8); got {got.headers.get('content-type')!r}"
    )
    assert got.content == expected, (
        f"the proxied body should equal the upstream's {len(expected)} bytes; got {len(got.content)} bytes"
    )


@pytest.mark.exercise(PROXY)
async def test_bytes_are_relayed_before_the_upstream_finishes(submission, servers) -> None:
    learner = Learner(submission.proxy)
    upstream, front = proxied(servers, learner, "/slow")
    try:
        status, first = await first_bytes(f"{front.url}/proxy")
        learner.raise_errors()
        assert first and status == 200, (
            f"the upstream sent its first part at once, but nothing came through the proxy within {WAIT:g} s: "
            "open the upstream with client.stream / send(..., stream=True) and relay each chunk, "
            "do not await the whole body (client.get) first"
        )
    finally:
        upstream.gate.open()


@pytest.mark.exercise(PROXY)
async def test_the_upstream_is_closed_within_200_ms_of_the_client_leaving(submission, servers) -> None:
    learner = Learner(submission.proxy)
    upstream, front = proxied(servers, learner, "/endless")
    status, first = await first_bytes(f"{front.url}/proxy")  # reads one chunk, then hangs up
    left_at = time.perf_counter()
    learner.raise_errors()
    assert first == b"tick\n" and status == 200, f"the first tick should come through the proxy within {WAIT:g} s"
    closed = await asyncio.to_thread(upstream.closed.wait, 2.0)
    assert closed, (
        "the client left, but the upstream request was still open 2 s later: close the upstream response and "
        "client in a `finally` (or `async with`) inside an ASYNC generator — a sync generator waiting in a "
        "thread, or cleanup after the loop, never runs when the client disconnects"
    )
    delay = upstream.closed_at - left_at
    assert delay < 0.2, f"the upstream was closed {delay * 1000:.0f} ms after the client left; expected within 200 ms"


@pytest.mark.exercise(PROXY)
async def test_a_client_opened_for_the_request_is_closed_when_the_client_leaves(
    submission, servers, monkeypatch
) -> None:
    """httpx closes the upstream CONNECTION itself when a read is cancelled; the AsyncClient is yours to close."""
    opened: list[httpx.AsyncClient] = []
    original = httpx.AsyncClient.__init__

    def tracking(client: httpx.AsyncClient, *args: Any, **kwargs: Any) -> None:
        original(client, *args, **kwargs)
        if threading.current_thread().name == "streamcourse-check-lab02-proxy":  # made while serving the request
            opened.append(client)

    monkeypatch.setattr(httpx.AsyncClient, "__init__", tracking)
    learner = Learner(submission.proxy)
    upstream, front = proxied(servers, learner, "/endless")
    status, first = await first_bytes(f"{front.url}/proxy")
    learner.raise_errors()
    assert first == b"tick\n" and status == 200, f"the first tick should come through the proxy within {WAIT:g} s"
    deadline = time.monotonic() + 0.5
    while any(not c.is_closed for c in opened) and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    still_open = sum(not c.is_closed for c in opened)
    assert not still_open, (
        f"{still_open} httpx.AsyncClient opened for this request was still open after the client left: close it "
        "in the generator's `finally` (or use `async with`) — code after the loop never runs on a disconnect"
    )
