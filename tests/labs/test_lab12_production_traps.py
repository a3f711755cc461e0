"""Checks for lab 12 — the traps between a working stream and a production one.

``lab12.timing_middleware``: the learner's ``TimingMiddleware(app, record)`` wraps a
relay built by ``streamcourse.harness.relay_behind`` (it runs beside the learner's
code). Its ``/complete`` notices a departed client through ``request.is_disconnected()``,
which ``BaseHTTPMiddleware`` never lets turn True while no response runs, so the
embedded model's record says whether the middleware hid the disconnect. ``record`` is
the check's own callable: the check notes, on its own clock, WHEN each entry arrives.

``lab12.credentialed_stream``: the learner's ``make_app(frontend)`` is served on one
port, pages on others; httpx checks the headers, Chromium checks what a page may read.

``lab12.stream_test``: the learner's ``test_ticks(base_url)`` is run against endpoints
this check serves, one correct and several broken; each run is bounded, and every
endpoint ends by itself within a minute, so a test that hangs costs nothing after.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.responses import HTMLResponse, StreamingResponse

from streamcourse import harness
from streamcourse.checkkit import Model, chromium, eventually, start_model, unique_prompt
from streamcourse.server import Server, serve

TIMING = "lab12.timing_middleware"
CREDENTIALS = "lab12.credentialed_stream"
STREAM_TEST = "lab12.stream_test"


# =========================================================================== lab12.timing_middleware


@dataclass
class Entries:
    """What the learner's middleware handed to ``record``, each with the check's time of arrival."""

    got: list[tuple[float, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, entry: Any) -> None:
        with self.lock:
            self.got.append((time.monotonic(), entry))

    def for_path(self, path: str) -> list[tuple[float, dict[str, Any]]]:
        with self.lock:
            return [(at, e) for at, e in self.got if isinstance(e, dict) and e.get("path") == path]


@dataclass
class Timed:
    url: str
    model: Model
    entries: Entries


@pytest.fixture
def timed(submission, servers) -> Timed:
    model = start_model(servers, "lab12-check-llm", ttft=0.01, token_interval=0.04, length=30)
    entries = Entries()
    app = submission.build(harness.relay_behind, submission.TimingMiddleware, model.url, record=entries.record)
    server = serve(app, name=f"lab12-check-timed-{uuid.uuid4().hex[:6]}")
    servers.append(server)
    return Timed(server.url, model, entries)


@dataclass
class Read:
    prompt: str
    status: int = 0
    body: bytes = b""
    sent_at: float = 0.0
    last_byte_at: float = 0.0
    left_at: float | None = None


async def read_chat(url: str, leave_after_tokens: int | None = None) -> Read:
    """GET /chat and read it all (or hang up after some token events), noting times on the check's clock."""
    read = Read(unique_prompt("time me"))

    async def go() -> None:
        async with httpx.AsyncClient(timeout=5) as http:
            read.sent_at = time.monotonic()
            async with http.stream("GET", f"{url}/chat", params={"prompt": read.prompt}) as response:
                read.status = response.status_code
                async for chunk in response.aiter_raw():
                    read.body += chunk
                    read.last_byte_at = time.monotonic()
                    if leave_after_tokens is not None and read.body.count(b"event: token") >= leave_after_tokens:
                        read.left_at = time.monotonic()
                        return  # leaving the block closes the connection

    try:
        await asyncio.wait_for(go(), 10)
    except TimeoutError:
        pytest.fail(
            "GET /chat behind your middleware did not end within 10 s: does your middleware pass every "
            "message on (await send(message)) and return when the app returns?",
            pytrace=False,
        )
    assert read.status == 200, (
        f"GET /chat behind your middleware answered {read.status} {read.body[:200]!r}: pass each message on unchanged"
    )
    return read


async def entry_for(entries: Entries, path: str, seconds: float = 2.0) -> tuple[float, dict[str, Any]]:
    found = await eventually(lambda: entries.for_path(path), seconds)
    others = [e for _, e in entries.got]
    assert found, (
        f"record(...) was never called with a dict whose path is {path!r} within {seconds:g} s of the response "
        f"ending (it got: {others[:3]!r}) — call it once per HTTP request, when the response has ended"
    )
    return entries.for_path(path)[0]


@pytest.mark.exercise(TIMING)
async def test_a_finished_stream_is_recorded_once_after_its_last_byte(timed) -> None:
    read = await read_chat(timed.url)
    assert read.body.count(b"event: done") == 1, (
        f"the relay's stream should arrive whole through your middleware; got {read.body[-200:]!r}"
    )
    recorded_at, _ = await entry_for(timed.entries, "/chat")
    early = read.last_byte_at - recorded_at
    assert early < 0.2, (
        f"the request was recorded {early:.2f} s BEFORE its last byte arrived: a stream is not over when its headers "
        "are sent — record when the last body message (more_body False) has gone, or when the client has left. "
        "(BaseHTTPMiddleware's call_next returns at the headers.)"
    )
    await asyncio.sleep(0.2)
    assert len(timed.entries.for_path("/chat")) == 1, "record one entry per request, not one per message"


@pytest.mark.exercise(TIMING)
async def test_the_entry_says_what_the_client_saw(timed) -> None:
    read = await read_chat(timed.url)
    _, entry = await entry_for(timed.entries, "/chat")
    status, size, seconds, left = (entry.get(k) for k in ("status", "bytes", "seconds", "client_left"))
    assert type(status) is int and status == 200, f"entry['status'] should be the int status sent, 200; got {status!r}"
    assert type(size) is int and size == len(read.body), (
        f"entry['bytes'] should count the body bytes sent ({len(read.body)}); got {size!r}"
    )
    took = read.last_byte_at - read.sent_at
    assert type(seconds) is float and took * 0.7 <= seconds <= took + 0.5, (
        f"entry['seconds'] should be the time from the request to the response's end (the client saw {took:.2f} s); "
        f"got {seconds!r}"
    )
    assert left is False, f"entry['client_left'] should be False for a response that ended normally; got {left!r}"


@pytest.mark.exercise(TIMING)
async def test_a_plain_response_is_recorded_with_its_status(timed) -> None:
    async with httpx.AsyncClient(timeout=5) as http:
        response = await http.get(f"{timed.url}/no-such-page")
    assert response.status_code == 404, (
        f"a missing page behind your middleware should still be a 404; got {response.status_code}"
    )
    _, entry = await entry_for(timed.entries, "/no-such-page")
    assert entry.get("status") == 404 and entry.get("bytes") == len(response.content), (
        f"expected status 404 and bytes {len(response.content)} for a plain 404 response; got {entry!r}"
    )


async def leave_while_waiting(timed: Timed, tokens: int = 3) -> tuple[float, str]:
    """GET /complete and hang up once the model has made ``tokens`` tokens; returns (when, prompt)."""
    prompt = unique_prompt("a long answer")

    async def ask() -> None:
        async with httpx.AsyncClient(timeout=10) as http:
            await http.get(f"{timed.url}/complete", params={"prompt": prompt})

    request = asyncio.create_task(ask())
    started = await eventually(
        lambda: any(prompt in g.prompt and g.tokens_sent >= tokens for g in timed.model.generations) or request.done(),
        5,
    )
    request.cancel()  # the client gives up: its connection closes
    left_at = time.monotonic()
    await asyncio.gather(request, return_exceptions=True)
    if request.done() and not request.cancelled() and request.exception() is not None:
        pytest.fail(f"GET /complete behind your middleware failed: {request.exception()!r}", pytrace=False)
    assert started, "the model never got the request through your middleware within 5 s"
    return left_at, prompt


@pytest.mark.exercise(TIMING)
async def test_the_model_stops_within_200ms_of_the_client_leaving(timed) -> None:
    left_at, prompt = await leave_while_waiting(timed)
    gen = timed.model.generation(prompt)
    closed = await gen.wait_closed_async(2.0)
    assert closed and not gen.finished, (
        "the client gave up after 3 tokens, but the model went on generating: behind your middleware the relay's "
        "request.is_disconnected() never saw the client go. BaseHTTPMiddleware hides it; a pure ASGI middleware "
        "that passes receive on (or wraps it and awaits nothing else) does not"
    )
    delay = gen.closed_at - left_at
    late = sum(1 for t in gen.token_times if t > left_at)
    assert delay < 0.2, f"the model stopped {delay * 1000:.0f} ms after the client left: expected under 200 ms"
    assert late <= 2, f"the model made {late} tokens after the client left: expected at most 2"


@pytest.mark.exercise(TIMING)
async def test_a_client_that_leaves_is_recorded_as_gone(timed) -> None:
    read = await read_chat(timed.url, leave_after_tokens=3)
    recorded_at, entry = await entry_for(timed.entries, "/chat")
    assert entry.get("client_left") is True, (
        f"the client hung up mid-stream, so entry['client_left'] should be True; got {entry!r} — watch the messages "
        "receive() returns for an http.disconnect that comes before the last body message"
    )
    delay = recorded_at - read.left_at
    assert delay < 0.5, f"the departure was recorded {delay:.2f} s after the client left: record when the app returns"


# =========================================================================== lab12.credentialed_stream


PAGE = "<!doctype html><meta charset='utf-8'><title>frontend</title><body>"

OPEN = """(url) => {
  window.got = []; window.errors = 0;
  const es = new EventSource(url, {withCredentials: true});
  const keep = (e) => window.got.push([e.type, e.data]);
  es.addEventListener("tick", keep);
  es.addEventListener("done", (e) => { keep(e); es.close(); });
  es.onerror = () => { window.errors += 1; };
  window.es = es;
}"""


@dataclass
class Site:
    api: Server  # the learner's app
    frontend: Server  # the origin it was told to trust
    other: Server  # an origin it was not told about


def page_server(servers: list[Server], name: str) -> Server:
    pages = FastAPI()
    pages.get("/", response_class=HTMLResponse)(lambda: PAGE)
    server = serve(pages, name=f"{name}-{uuid.uuid4().hex[:6]}")
    servers.append(server)
    return server


@pytest.fixture
def site(submission, servers) -> Site:
    frontend = page_server(servers, "lab12-check-frontend")
    other = page_server(servers, "lab12-check-other-site")
    api = serve(submission.make_app(frontend.url), name=f"lab12-check-api-{uuid.uuid4().hex[:6]}")
    servers.append(api)
    return Site(api, frontend, other)


async def log_in(http: httpx.AsyncClient, site: Site, user: str) -> str:
    response = await http.get(f"{site.api.url}/login", params={"user": user})
    assert response.status_code == 200, f"GET /login?user={user} should answer 200; got {response.status_code}"
    session = response.cookies.get("session")
    assert session, f"GET /login should set a cookie named session; it set {dict(response.cookies)!r}"
    return session


async def read_stream(http: httpx.AsyncClient, url: str, **kwargs: Any) -> tuple[httpx.Response, list[tuple[str, str]]]:
    """The response (headers) and its events, read with bounds."""
    events: list[tuple[str, str]] = []

    async def go() -> httpx.Response:
        async with http.stream("GET", url, **kwargs) as response:
            if response.headers.get("content-type", "").startswith("text/event-stream"):
                name = ""
                async for line in response.aiter_lines():
                    if line.startswith("event:"):
                        name = line[6:].strip()
                    elif line.startswith("data:"):
                        events.append((name or "message", line[5:].strip()))
                        name = ""
            else:
                await response.aread()
            return response

    try:
        return await asyncio.wait_for(go(), 5), events
    except TimeoutError:
        pytest.fail("GET /events did not end within 5 s: send three ticks and done, then end the stream", pytrace=False)


@pytest.mark.exercise(CREDENTIALS)
@pytest.mark.parametrize(
    "cookie", [None, "alice", "not-a-session"], ids=["no_cookie", "user_name_as_cookie", "unknown_session"]
)
async def test_events_without_a_valid_session_are_refused_with_401(site, cookie) -> None:
    async with httpx.AsyncClient(timeout=5) as http:
        await log_in(http, site, "alice")
        http.cookies.clear()
        response, events = await read_stream(
            http, f"{site.api.url}/events", headers={"Cookie": f"session={cookie}"} if cookie else {}
        )
    assert response.status_code == 401 and not events, (
        f"GET /events with {'no cookie' if cookie is None else f'the cookie session={cookie}'} should be refused with "
        f"401 before any stream; got {response.status_code} {response.headers.get('content-type')!r} — the session "
        "cookie must be a random token the server looked up, and the check belongs in a dependency, not the generator"
    )


@pytest.mark.exercise(CREDENTIALS)
@pytest.mark.behaviour("every answer must stream to a logged-in user; the wrong answers fail the cross-origin checks")
async def test_a_logged_in_user_gets_a_stream_that_names_them(site) -> None:
    async with httpx.AsyncClient(timeout=5) as http:
        for user in ("alice", "bob"):
            http.cookies.clear()
            await log_in(http, site, user)
            response, events = await read_stream(http, f"{site.api.url}/events")
            assert response.status_code == 200 and response.headers.get("content-type", "").startswith(
                "text/event-stream"
            ), (
                f"a logged-in GET /events should be a 200 event stream; got {response.status_code} {response.headers.get('content-type')!r}"
            )
            names = [name for name, _ in events]
            assert names == ["tick", "tick", "tick", "done"], f"expected three tick events then done; got {names}"
            ticks = [json.loads(data) for name, data in events if name == "tick"]
            assert ticks == [{"user": user, "n": n} for n in (1, 2, 3)], (
                f'each tick\'s data should be {{"user": "{user}", "n": 1..3}} for the user logged in; got {ticks}'
            )


@pytest.mark.exercise(CREDENTIALS)
async def test_the_frontend_origin_may_read_it_with_credentials(site) -> None:
    async with httpx.AsyncClient(timeout=5) as http:
        await log_in(http, site, "alice")
        response, _ = await read_stream(http, f"{site.api.url}/events", headers={"Origin": site.frontend.url})
    allow = response.headers.get("access-control-allow-origin")
    credentials = response.headers.get("access-control-allow-credentials")
    assert allow == site.frontend.url and credentials == "true", (
        f"for Origin {site.frontend.url} the stream should carry Access-Control-Allow-Origin: {site.frontend.url} and "
        f"Access-Control-Allow-Credentials: true; got {allow!r} and {credentials!r} — a browser hands a credentialed "
        "response to a page only then (never with '*')"
    )


@pytest.mark.exercise(CREDENTIALS)
async def test_no_other_origin_is_allowed_to_read_it(site) -> None:
    async with httpx.AsyncClient(timeout=5) as http:
        await log_in(http, site, "alice")
        response, _ = await read_stream(http, f"{site.api.url}/events", headers={"Origin": site.other.url})
    allow = response.headers.get("access-control-allow-origin")
    assert allow is None, (
        f"a page from {site.other.url} (not the frontend) got Access-Control-Allow-Origin: {allow!r}: with the user's "
        "cookie, any site could read their stream. Allow exactly the frontend origin — Starlette's "
        "allow_origins=['*'] with allow_credentials=True echoes every origin back"
    )


@pytest.fixture(scope="module")
def chrome() -> Iterator[Any]:
    with chromium() as launched:
        yield launched


def browser_reads(chrome: Any, site: Site, page_origin: Server) -> dict[str, Any]:
    """Log in at the API as a person would (visit /login), then open the stream from a page of ``page_origin``."""
    context = chrome.new_context()
    try:
        tab = context.new_page()
        tab.goto(f"{site.api.url}/login?user=alice")
        tab.goto(f"{page_origin.url}/")
        tab.evaluate(OPEN, f"{site.api.url}/events")
        tab.wait_for_function("window.got.some(e => e[0] === 'done') || window.errors > 0", timeout=5000)
        return tab.evaluate("({got: window.got, errors: window.errors})")
    finally:
        context.close()


@pytest.mark.exercise(CREDENTIALS)
def test_in_chromium_the_frontend_page_streams_with_the_users_cookie(chrome, site) -> None:
    seen = browser_reads(chrome, site, site.frontend)
    assert [name for name, _ in seen["got"]] == ["tick", "tick", "tick", "done"], (
        f"in Chromium, a page from {site.frontend.url} with new EventSource(url, {{withCredentials: true}}) should "
        f"read three ticks and done; it read {seen['got']} with {seen['errors']} errors — allow that exact origin "
        "with credentials (CORSMiddleware(allow_origins=[frontend], allow_credentials=True))"
    )


@pytest.mark.exercise(CREDENTIALS)
def test_in_chromium_a_page_from_another_origin_reads_nothing(chrome, site) -> None:
    seen = browser_reads(chrome, site, site.other)
    assert seen["got"] == [], (
        f"in Chromium, a page from {site.other.url} read the logged-in user's stream: {seen['got']} — "
        "allow only the frontend origin"
    )


# =========================================================================== lab12.stream_test


GUARD_SECONDS = 60  # every endpoint ends by itself after this, so a learner's test that hangs does not hang for ever


def tick(n: int) -> str:
    return f"event: tick\ndata: {n}\n\n"


DONE = "event: done\ndata: done\n\n"


async def paced(pieces: Iterator[str], gap: float = 0.1) -> AsyncIterator[str]:
    for piece in pieces:
        yield piece
        await asyncio.sleep(gap)


async def buffered() -> AsyncIterator[str]:
    await asyncio.sleep(0.5)
    yield "".join(tick(n) for n in range(1, 6)) + DONE


async def silent() -> AsyncIterator[str]:
    yield ": the headers are out, and then nothing\n\n"
    await asyncio.sleep(GUARD_SECONDS)


def endless() -> Iterator[str]:
    return (tick(n) for n in range(1, GUARD_SECONDS * 10))


#: Each broken endpoint: what it does wrong (for the feedback), and its body.
BROKEN: dict[str, tuple[str, Any]] = {
    "endless": ("never ends (ticks for ever, no done)", lambda: paced(endless())),
    "silent": ("sends its headers and then nothing at all", silent),
    "buffered": ("sends all five ticks and done at once, after 0.5 s (buffered, not streamed)", buffered),
    "no_done": ("ends after the five ticks without a done event", lambda: paced(tick(n) for n in range(1, 6))),
    "skips_one": ("sends ticks 1, 2, 4, 5, 6", lambda: paced(iter([tick(n) for n in (1, 2, 4, 5, 6)] + [DONE]))),
    "plain_text": ("sends the right events as text/plain", None),
}


def correct() -> AsyncIterator[str]:
    return paced(iter([tick(n) for n in range(1, 6)] + [DONE]))


def endpoints_app() -> FastAPI:
    """``/<variant>/ticks`` for the correct endpoint and each broken one."""
    app = FastAPI()

    @app.get("/{variant}/ticks")
    async def ticks(variant: str) -> StreamingResponse:
        if variant == "plain_text":
            return StreamingResponse(correct(), media_type="text/plain")
        body = correct if variant == "correct" else BROKEN[variant][1]
        return StreamingResponse(body(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})

    return app


@pytest.fixture
def endpoints(servers) -> str:
    server = serve(endpoints_app(), name=f"lab12-check-endpoints-{uuid.uuid4().hex[:6]}")
    servers.append(server)
    return server.url


TEST_SECONDS = 10.0


def run_learner_test(test: Any, base_url: str) -> BaseException | None:
    """Run the learner's test in a thread for at most TEST_SECONDS: the exception it failed with, or None."""
    box: dict[str, BaseException | None] = {}

    def target() -> None:
        try:
            test(base_url)
            box["outcome"] = None
        except (Exception, pytest.fail.Exception) as exc:  # noqa: BLE001 - a failing test is the point
            box["outcome"] = exc

    worker = threading.Thread(target=target, daemon=True, name="streamcourse-learner-test")
    worker.start()
    worker.join(TEST_SECONDS)
    if worker.is_alive():
        raise TimeoutError
    outcome = box["outcome"]
    if isinstance(outcome, NotImplementedError):
        raise outcome  # the stub: "not written yet"
    return outcome


@pytest.mark.exercise(STREAM_TEST)
@pytest.mark.behaviour(
    "a learner's test must pass on a correct endpoint; the wrong answers are tests that pass on broken ones"
)
def test_your_test_passes_against_a_correct_endpoint(submission, endpoints) -> None:
    try:
        failure = run_learner_test(submission.test_ticks, f"{endpoints}/correct")
    except TimeoutError:
        pytest.fail(
            f"your test_ticks was still running after {TEST_SECONDS:g} s against a CORRECT endpoint (five "
            "ticks 0.1 s apart, done, end): it should take about half a second",
            pytrace=False,
        )
    assert failure is None, (
        f"your test_ticks failed against a correct endpoint (five ticks 0.1 s apart, then done, then the end) with "
        f"{type(failure).__name__}: {failure}"
    )


@pytest.mark.exercise(STREAM_TEST)
@pytest.mark.parametrize("variant", list(BROKEN))
def test_your_test_fails_against_a_broken_endpoint(submission, endpoints, variant) -> None:
    what = BROKEN[variant][0]
    try:
        failure = run_learner_test(submission.test_ticks, f"{endpoints}/{variant}")
    except TimeoutError:
        pytest.fail(
            f"your test_ticks was still running after {TEST_SECONDS:g} s against an endpoint that {what}: "
            "a test must fail, not hang — read at most the events you expect, with a read timeout, "
            "and never the whole body of a stream",
            pytrace=False,
        )
    assert failure is not None, f"your test_ticks passed against an endpoint that {what}: it should fail there"
