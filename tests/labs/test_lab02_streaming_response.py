"""Checks for lab 02 — StreamingResponse: ``csv_export``, ``ndjson_rows`` and ``proxy``.

The learner's functions are put behind a route by a builder from
``streamcourse.harness`` (it runs wherever the learner's code runs), served on a
real socket and read by the check over HTTP. Everything is observed from the
check's side: the bytes and their chunked framing on the raw socket, how far
the check's own gated sources were read, and the record of the check's own
upstream server — whose async generator notes when its ``finally`` ran: that is
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

from streamcourse import harness
from streamcourse.checkkit import eventually, raw_get
from streamcourse.server import Server, serve

CSV = "lab02.csv_export"
NDJSON = "lab02.ndjson_rows"
PROXY = "lab02.proxy"

WAIT = 3.0  # seconds a check waits for a first byte before it calls the answer "not streaming"
HEADER = ("id", "name", "note")


def start(servers: list[Server], app: Any, name: str) -> Server:
    server = serve(app, name=f"check-lab02-{name}")
    servers.append(server)
    return server


def require_no_error(status: int, headers: Any, body: bytes, name: str) -> None:
    """A 500 from the builder's route means the learner's function raised: say what it raised."""
    if status == 500 and harness.LEARNER_ERROR in headers:
        pytest.fail(f"your {name} raised {body.decode(errors='replace')[:300]}", pytrace=False)


def expect_ok(response: httpx.Response, name: str) -> None:
    require_no_error(response.status_code, response.headers, response.content, name)
    assert response.status_code == 200, f"expected status 200, got {response.status_code}"


class Gate:
    """Holds a source at a point until the check opens it (or 10 s pass). The check owns it."""

    def __init__(self) -> None:
        self.event = threading.Event()

    def hold(self) -> None:
        self.event.wait(10)

    async def ahold(self) -> None:
        await eventually(self.event.is_set, 10, interval=0.005)

    def open(self) -> None:
        self.event.set()


async def fetch(url: str, timeout: float = WAIT * 3) -> httpx.Response:
    async with httpx.AsyncClient(timeout=timeout) as client:
        return await client.get(url)


async def first_bytes(url: str, name: str) -> tuple[int, bytes | None, float]:
    """Status, the first body bytes (None when none arrive within WAIT), and when the check hung up."""
    async with httpx.AsyncClient(timeout=WAIT) as client:
        try:
            async with client.stream("GET", url) as response:
                try:
                    first = await asyncio.wait_for(anext(response.aiter_raw()), WAIT)
                except (TimeoutError, StopAsyncIteration):
                    first = None
                if response.status_code == 500:
                    require_no_error(500, response.headers, first or b"", name)
                left_at = time.perf_counter()  # leaving the block closes the connection: the client is gone
            return response.status_code, first, left_at
        except httpx.TimeoutException:
            return 0, None, time.perf_counter()


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


def gated_rows(gate: Gate, before: int = 1_000, after: int = 10) -> Iterator[tuple[int, str, str]]:
    """~220 KB of rows (wide ones: few enough to cross the grader's channel quickly), then the gate, then a few more."""
    for i in range(before):
        yield (i, f"user {i}", "x" * 200)
    gate.hold()
    for i in range(before, before + after):
        yield (i, f"user {i}", "x" * 200)


def csv_server(submission: Any, servers: list[Server], rows: Any, filename: str = "report-2026.csv") -> Server:
    app = submission.build(harness.csv_download_app, submission.csv_export, rows, list(HEADER), filename)
    return start(servers, app, "csv")


def parse_csv(body: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(body.decode("utf-8"), newline="")))


@pytest.mark.exercise(CSV)
async def test_first_bytes_arrive_before_the_last_row_is_produced(submission, servers) -> None:
    gate = Gate()
    server = csv_server(submission, servers, lambda: gated_rows(gate))
    try:
        status, first, _ = await first_bytes(f"{server.url}/export", "csv_export")
        assert first and status == 200, (
            f"no bytes arrived within {WAIT:g} s while the last rows were still being produced: stream the CSV "
            "from a generator inside a StreamingResponse instead of building it whole first"
        )
    finally:
        gate.open()


@pytest.mark.exercise(CSV)
async def test_the_export_leaves_the_event_loop_free(submission, servers) -> None:
    """Rows come from a slow (here: held) sync source: read in a worker thread, it cannot stop other requests."""
    gate = Gate()
    server = csv_server(submission, servers, lambda: gated_rows(gate))
    try:
        async with httpx.AsyncClient(timeout=WAIT) as client, client.stream("GET", f"{server.url}/export") as export:
            try:
                first = await asyncio.wait_for(anext(export.aiter_raw()), WAIT)
            except (TimeoutError, StopAsyncIteration):
                pytest.fail(
                    f"no bytes of the export arrived within {WAIT:g} s: stream it from a generator", pytrace=False
                )
            require_no_error(export.status_code, export.headers, first, "csv_export")
            try:
                pong = await client.get(f"{server.url}/ping", timeout=2.0)
            except httpx.TimeoutException:
                pong = None
            assert pong is not None and pong.status_code == 200, (
                "while the export waited for its next rows, the server could not answer another request for 2 s: "
                "an `async def` generator that reads a plain iterable runs on the event loop and blocks it. "
                "Use a plain `def` generator — Starlette runs it in a worker thread"
            )
    finally:
        gate.open()


@pytest.mark.exercise(CSV)
async def test_values_with_commas_quotes_and_newlines_are_quoted(submission, servers) -> None:
    server = csv_server(submission, servers, lambda: iter(TRICKY_ROWS))
    response = await fetch(f"{server.url}/export")
    expect_ok(response, "csv_export")
    got = parse_csv(response.content)
    expected = [list(HEADER)] + [[str(v) for v in row] for row in TRICKY_ROWS]
    assert got == expected, (
        "read back with the csv module, the export should give the header and then every row unchanged — "
        "values with commas, quotes and newlines need quoting: write rows with csv.writer, not f-strings. "
        f"Got {got[:4]!r}…"
    )


@pytest.mark.exercise(CSV)
async def test_download_headers_say_csv_attachment_with_the_filename(submission, servers) -> None:
    server = csv_server(submission, servers, lambda: iter(TRICKY_ROWS[:2]))
    response = await fetch(f"{server.url}/export")
    expect_ok(response, "csv_export")
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
    """Each send of the app is one chunk of the chunked body: counted on the raw socket."""
    n = 20_000
    server = csv_server(submission, servers, n)  # the rows are made beside the learner's code
    reply = await asyncio.to_thread(raw_get, f"{server.url}/export", 30.0)
    require_no_error(reply.status, reply.headers, reply.body, "csv_export")
    assert reply.status == 200 and reply.complete, f"expected a complete 200 response, got {reply.status}"
    rows = len(parse_csv(reply.body)) - 1
    assert rows == n, f"expected {n} rows after the header, got {rows}"
    most = len(reply.body) // 8192 + 2
    assert len(reply.chunks) <= most, (
        f"{n} rows ({len(reply.body) // 1024} KiB) took {len(reply.chunks)} sends: one send per row is many times "
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


def ndjson_server(submission: Any, servers: list[Server], items: AsyncIterator[Any]) -> Server:
    """The learner's ndjson_rows behind GET /items, fed the check's own ``items`` (one request)."""
    return start(servers, submission.build(harness.ndjson_app, submission.ndjson_rows, items), "ndjson")


@pytest.mark.exercise(NDJSON)
async def test_each_item_is_one_json_line_ending_in_a_newline(submission, servers) -> None:
    server = ndjson_server(submission, servers, items_from(ITEMS))
    response = await fetch(f"{server.url}/items")
    expect_ok(response, "ndjson_rows")
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
    gate = Gate()
    server = ndjson_server(submission, servers, items_from(ITEMS, gate))
    try:
        status, first, _ = await first_bytes(f"{server.url}/items", "ndjson_rows")
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
    server = ndjson_server(submission, servers, items_from(ITEMS[:2]))
    response = await fetch(f"{server.url}/items")
    expect_ok(response, "ndjson_rows")
    content_type = response.headers.get("content-type", "")
    assert content_type.split(";")[0].strip() in ("application/x-ndjson", "application/jsonl"), (
        f"Content-Type should be application/x-ndjson (or application/jsonl), not {content_type!r}"
    )


@pytest.mark.exercise(NDJSON)
async def test_an_empty_source_gives_an_empty_body(submission, servers) -> None:
    server = ndjson_server(submission, servers, items_from([]))
    response = await fetch(f"{server.url}/items")
    expect_ok(response, "ndjson_rows")
    assert response.content == b"", (
        f"no items means no lines at all (not '[]' or a blank line); got {response.content!r}"
    )


# --------------------------------------------------------------------------- proxy


class Upstream:
    """The service being proxied (the check's own server); it records when an endless stream's ``finally`` ran."""

    def __init__(self) -> None:
        self.gate = Gate()
        self.closed = threading.Event()
        self.closed_at = 0.0
        self.app = FastAPI()
        self.app.get("/report.csv")(self.report)
        self.app.get("/missing")(self.missing)
        self.app.get("/slow")(self.slow)
        self.app.get("/endless")(self.endless)
        self.app.get("/broken")(self.broken)

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

    def silent_after(self, first: bytes) -> AsyncIterator[bytes]:
        async def body() -> AsyncIterator[bytes]:
            try:
                yield first
                while True:
                    await asyncio.sleep(30)  # silent: the proxy hears nothing more from upstream
                    yield first
            finally:
                self.closed_at = time.perf_counter()
                self.closed.set()

        return body()

    async def endless(self) -> Response:
        return StreamingResponse(self.silent_after(b"tick\n"), media_type="text/plain; charset=utf-8")

    async def broken(self) -> Response:
        """A failing service whose error page never ends: only a proxy that closes it lets it go."""
        return StreamingResponse(self.silent_after(b"<h1>503</h1>\n"), status_code=503, media_type="text/html")


def proxied(submission: Any, servers: list[Server], path: str) -> tuple[Upstream, Server]:
    upstream = Upstream()
    up = start(servers, upstream.app, "upstream")
    app = submission.build(harness.proxy_app, submission.proxy, f"{up.url}{path}")
    return upstream, start(servers, app, "proxy")


@pytest.mark.exercise(PROXY)
async def test_status_and_content_type_are_passed_through(submission, servers) -> None:
    upstream, front = proxied(submission, servers, "/missing")
    got = await fetch(f"{front.url}/proxy")
    require_no_error(got.status_code, got.headers, got.content, "proxy")
    assert got.status_code == 404, f"the upstream answered 404; the proxy should answer 404 too, not {got.status_code}"
    assert got.headers.get("content-type") == "application/problem+json", (
        f"pass the upstream's Content-Type through (application/problem+json); got {got.headers.get('content-type')!r}"
    )
    assert got.content == b'{"title": "no such report"}', (
        f"the body should be the upstream's body; got {got.content[:80]!r}"
    )


@pytest.mark.exercise(PROXY)
async def test_a_streamed_body_arrives_whole_and_unchanged(submission, servers) -> None:
    upstream, front = proxied(submission, servers, "/report.csv")
    got = await fetch(f"{front.url}/proxy")
    expect_ok(got, "proxy")
    expected = "".join(f"{i},row {i},\xe9\n" for i in range(2_000)).encode()
    assert got.headers.get("content-type", "").startswith("text/csv"), (
        f"pass the upstream's Content-Type through (text/csv; charset=utf-8); got {got.headers.get('content-type')!r}"
    )
    assert got.content == expected, (
        f"the proxied body should equal the upstream's {len(expected)} bytes; got {len(got.content)} bytes"
    )


@pytest.mark.exercise(PROXY)
async def test_bytes_are_relayed_before_the_upstream_finishes(submission, servers) -> None:
    upstream, front = proxied(submission, servers, "/slow")
    try:
        status, first, _ = await first_bytes(f"{front.url}/proxy", "proxy")
        assert first and status == 200, (
            f"the upstream sent its first part at once, but nothing came through the proxy within {WAIT:g} s: "
            "open the upstream with client.stream / send(..., stream=True) and relay each chunk, "
            "do not await the whole body (client.get) first"
        )
    finally:
        upstream.gate.open()


@pytest.mark.exercise(PROXY)
async def test_the_upstream_is_closed_within_200_ms_of_the_client_leaving(submission, servers) -> None:
    upstream, front = proxied(submission, servers, "/endless")
    status, first, left_at = await first_bytes(f"{front.url}/proxy", "proxy")  # reads one chunk, then hangs up
    assert first == b"tick\n" and status == 200, f"the first tick should come through the proxy within {WAIT:g} s"
    closed = await asyncio.to_thread(upstream.closed.wait, 2.0)
    assert closed, (
        "the client left, but the upstream request was still open 2 s later: close the upstream response and "
        "client in a `finally` (or `async with`) inside an ASYNC generator — a sync generator waiting in a "
        "thread never notices the client leaving"
    )
    delay = upstream.closed_at - left_at
    assert delay < 0.2, f"the upstream was closed {delay * 1000:.0f} ms after the client left; expected within 200 ms"


@pytest.mark.exercise(PROXY)
async def test_a_failing_upstream_gets_502_and_is_closed(submission, servers) -> None:
    """The 502 never streams the upstream: no generator starts, so no generator's finally can close it."""
    upstream, front = proxied(submission, servers, "/broken")
    got = await fetch(f"{front.url}/proxy")
    answered_at = time.perf_counter()
    require_no_error(got.status_code, got.headers, got.content, "proxy")
    assert got.status_code == 502, (
        f"the upstream failed with 503: answer 502 Bad Gateway (not its error page); got {got.status_code}"
    )
    closed = await asyncio.to_thread(upstream.closed.wait, 2.0)
    assert closed, (
        "the proxy answered 502 but left the failing upstream open (still open 2 s later): a response you never "
        "return never runs its generator, so close the upstream response and the client yourself before answering"
    )
    delay = upstream.closed_at - answered_at
    assert delay < 0.2, f"the upstream was closed {delay * 1000:.0f} ms after the 502; close it before you answer"
