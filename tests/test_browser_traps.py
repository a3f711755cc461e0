"""Lesson 12's browser claims, proved in a real Chromium: auth, CORS, six connections, HTTP/2.

Each test opens a blank page from one origin (``http://127.0.0.1:<port A>``) and
streams from an API on another (``<port B>``): two ports are two origins, as
``app.example.com`` and ``api.example.com`` are. The API records every request it
gets (headers, the connection it came on), so a test can tell what the browser
SENT from what the page was allowed to READ. Chromium is Debian's, driven by
Playwright with ``executable_path`` (``tests/conftest.py``'s ``browser`` fixture);
the measured numbers are printed (``pytest -s`` shows them).
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from fastapi import FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import HTMLResponse, JSONResponse, Response, StreamingResponse

from streamcourse.http2 import serve_http2
from streamcourse.server import Server, serve

pytestmark = pytest.mark.browser

SESSION = "s3cr3t-session-of-alice"


@dataclass
class Seen:
    """One request as the API got it."""

    method: str
    headers: dict[str, str]
    query: dict[str, str]
    client_port: int
    http_version: str
    at: float = field(default_factory=time.monotonic)


class Recorder:
    def __init__(self) -> None:
        self.by_tag: defaultdict[str, list[Seen]] = defaultdict(list)
        self.lock = threading.Lock()

    def note(self, request: Request) -> None:
        seen = Seen(
            request.method,
            dict(request.headers),
            dict(request.query_params),
            request.scope["client"][1],
            request.scope["http_version"],
        )
        with self.lock:
            self.by_tag[request.query_params.get("tag", "")].append(seen)

    def get(self, tag: str, method: str = "GET") -> list[Seen]:
        with self.lock:
            return [s for s in self.by_tag[tag] if s.method == method]


def api_app(rec: Recorder, cors: dict[str, Any] | None, with_page: bool = False) -> Any:
    """An event stream (``/events``), a cookie login (``/login``) and a token check, with the given CORS settings."""
    app = FastAPI()
    if with_page:
        app.get("/", response_class=HTMLResponse)(lambda: BLANK)
    tokens = {"valid": time.monotonic() + 60, "expired": time.monotonic() - 1}

    @app.get("/login")
    async def login() -> Response:
        response = JSONResponse({"user": "alice"})
        response.set_cookie("session", SESSION, httponly=True, samesite="lax")
        return response

    @app.get("/events")
    async def events(request: Request, token: str | None = None, endless: bool = False) -> Response:
        authorized = (
            request.cookies.get("session") == SESSION
            or request.headers.get("authorization") == f"Bearer {SESSION}"
            or tokens.get(token or "", 0) > time.monotonic()
        )
        if not authorized:
            return JSONResponse({"detail": "log in first"}, status_code=401)

        async def stream() -> AsyncIterator[str]:
            yield "retry: 60000\n\n"  # no reconnection during a test
            for n in range(10_000 if endless else 3):
                yield f"data: private event {n} for alice\n\n"
                await asyncio.sleep(0.1)

        return StreamingResponse(stream(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})

    if cors is not None:
        app.add_middleware(CORSMiddleware, **cors)

    async def recorded(scope: Any, receive: Any, send: Any) -> None:  # outermost: preflights are recorded too
        if scope["type"] == "http":
            rec.note(Request(scope))
        await app(scope, receive, send)

    return recorded


BLANK = "<!doctype html><meta charset='utf-8'><title>a page</title><body>"

OPEN_EVENT_SOURCE = """([url, options]) => {
  window.got = []; window.errors = 0;
  const es = new EventSource(url, options);
  es.onmessage = (e) => window.got.push(e.data);
  es.onerror = () => { window.errors += 1; };
  window.es = es;
}"""


@pytest.fixture(scope="module")
def rec() -> Recorder:
    return Recorder()


@pytest.fixture(scope="module")
def origins(rec: Recorder) -> Iterator[dict[str, Server]]:
    """Page origins (``page``, ``evil``) and APIs with three CORS settings, each on its own port."""
    pages = FastAPI()

    @pages.get("/", response_class=HTMLResponse)
    async def blank() -> str:
        return BLANK

    @pages.get("/shared-worker.js")
    async def shared_worker() -> Response:
        return Response(SHARED_WORKER, media_type="text/javascript")

    started = {"page": serve(pages, name="traps-page"), "evil": serve(pages, name="traps-evil")}
    page_origin = started["page"].url
    settings = {
        "api_star": {"allow_origins": ["*"]},
        "api_exact": {"allow_origins": [page_origin], "allow_credentials": True, "allow_headers": ["Authorization"]},
        "api_star_credentials": {"allow_origins": ["*"], "allow_credentials": True},
        "api_none": None,
    }
    for name, cors in settings.items():
        started[name] = serve(api_app(rec, cors), name=f"traps-{name}")
    yield started
    for server in started.values():
        server.stop()


@pytest.fixture
def page(browser: Any, origins: dict[str, Server]) -> Iterator[Any]:
    """A fresh browser context (its own cookies) with a blank page from the ``page`` origin, logged in at the API."""
    context = browser.new_context()
    tab = context.new_page()
    yield tab
    context.close()


def log_in(tab: Any, api: Server) -> None:
    """Log in as a person would: visit the API's login URL (the cookie belongs to host 127.0.0.1)."""
    tab.goto(f"{api.url}/login")


def stream_url(api: Server, **params: str) -> tuple[str, str]:
    tag = uuid.uuid4().hex[:8]
    query = "&".join(f"{k}={v}" for k, v in {"tag": tag, **params}.items())
    return f"{api.url}/events?{query}", tag


def wait_for_requests(rec: Recorder, tag: str, n: int, seconds: float = 5.0, method: str = "GET") -> list[Seen]:
    deadline = time.monotonic() + seconds
    while len(rec.get(tag, method)) < n:
        if time.monotonic() > deadline:
            pytest.fail(f"the API got {len(rec.get(tag, method))} {method} requests for {tag}, expected {n}")
        time.sleep(0.02)
    return rec.get(tag, method)


def event_source(tab: Any, origin: Server, url: str, with_credentials: bool = False) -> None:
    tab.goto(f"{origin.url}/")
    tab.evaluate(OPEN_EVENT_SOURCE, [url, {"withCredentials": with_credentials}])


def outcome(tab: Any) -> dict[str, Any]:
    """What the page could read: its messages, errors and the EventSource's state (2 = CLOSED)."""
    tab.wait_for_function("window.got.length >= 3 || window.errors > 0", timeout=5000)
    return tab.evaluate("({got: window.got, errors: window.errors, state: window.es.readyState})")


# --------------------------------------------------------------------------- headers, cookies, CORS


def test_event_source_has_no_way_to_send_an_authorization_header(page, origins, rec) -> None:
    log_in(page, origins["api_exact"])
    url, tag = stream_url(origins["api_exact"])
    page.goto(f"{origins['page'].url}/")
    page.evaluate(
        OPEN_EVENT_SOURCE, [url, {"withCredentials": True, "headers": {"Authorization": f"Bearer {SESSION}"}}]
    )
    sent = wait_for_requests(rec, tag, 1)[0].headers
    print(f"EventSource sent: {sorted(sent)}")
    assert "authorization" not in sent, "EventSource ignores a headers option: there is no way to add Authorization"
    assert sent.get("accept") == "text/event-stream"


def test_with_credentials_and_an_exact_origin_the_cookie_goes_and_the_page_reads_the_stream(page, origins, rec) -> None:
    log_in(page, origins["api_exact"])
    url, tag = stream_url(origins["api_exact"])
    event_source(page, origins["page"], url, with_credentials=True)
    seen = outcome(page)
    request = wait_for_requests(rec, tag, 1)[0]
    print(
        f"exact origin + withCredentials: cookie sent={'session' in request.headers.get('cookie', '')}, read {seen['got']}"
    )
    assert f"session={SESSION}" in request.headers.get("cookie", ""), (
        "withCredentials sends the API's cookie cross-origin"
    )
    assert seen["got"][:3] == [f"private event {n} for alice" for n in range(3)]


def test_without_with_credentials_no_cookie_goes_and_the_stream_is_refused(page, origins, rec) -> None:
    log_in(page, origins["api_exact"])
    url, tag = stream_url(origins["api_exact"])
    event_source(page, origins["page"], url, with_credentials=False)
    seen = outcome(page)
    request = wait_for_requests(rec, tag, 1)[0]
    assert "cookie" not in request.headers, "a cross-origin EventSource without withCredentials sends no cookie"
    assert seen["got"] == [] and seen["state"] == 2, (
        "the API answered 401, and a non-200 answer closes the EventSource for good"
    )


def test_a_star_origin_cannot_be_used_with_credentials(page, origins, rec) -> None:
    log_in(page, origins["api_star"])
    url, tag = stream_url(origins["api_star"])
    event_source(page, origins["page"], url, with_credentials=True)
    seen = outcome(page)
    request = wait_for_requests(rec, tag, 1)[0]
    print(
        f"ACAO '*' + withCredentials: cookie sent={'cookie' in request.headers}, page read {seen['got']}, state {seen['state']}"
    )
    assert "cookie" in request.headers, "the browser did send the cookie, and the API streamed its answer..."
    assert seen["got"] == [] and seen["errors"] >= 1 and seen["state"] == 2, (
        "...but with Access-Control-Allow-Origin: * the browser must not hand a credentialed response to the page"
    )


def test_starlettes_star_with_credentials_lets_any_origin_read_the_users_stream(page, origins, rec) -> None:
    """allow_origins=["*"] + allow_credentials=True: Starlette echoes EVERY origin back, so the 'evil' page reads too."""
    log_in(page, origins["api_star_credentials"])
    url, tag = stream_url(origins["api_star_credentials"])
    event_source(page, origins["evil"], url, with_credentials=True)
    seen = outcome(page)
    print(f"star + credentials, read from another origin: {seen['got']}")
    assert seen["got"][:1] == ["private event 0 for alice"], "any origin reads the logged-in user's private stream"


def test_an_exact_origin_keeps_other_origins_out(page, origins, rec) -> None:
    log_in(page, origins["api_exact"])
    url, tag = stream_url(origins["api_exact"])
    event_source(page, origins["evil"], url, with_credentials=True)
    seen = outcome(page)
    wait_for_requests(rec, tag, 1)
    assert seen["got"] == [] and seen["state"] == 2, "a page from an origin that is not allowed reads nothing"


def test_a_short_lived_token_in_the_query_string_needs_no_cookie_and_no_credentials(page, origins, rec) -> None:
    url, tag = stream_url(origins["api_star"], token="valid")
    event_source(page, origins["page"], url)
    seen = outcome(page)
    assert seen["got"][:1] == ["private event 0 for alice"]
    request = wait_for_requests(rec, tag, 1)[0]
    assert request.query["token"] == "valid", "the token travels in the URL: it lands in every access log on the way"

    expired_url, expired_tag = stream_url(origins["api_star"], token="expired")
    event_source(page, origins["page"], expired_url)
    assert outcome(page)["got"] == [], "an expired token is refused (401): the EventSource closes and does not retry"


def test_fetch_streams_with_an_authorization_header_after_a_preflight(page, origins, rec) -> None:
    url, tag = stream_url(origins["api_exact"])
    page.goto(f"{origins['page'].url}/")
    arrivals = page.evaluate(
        """async ([url, token]) => {
      const started = performance.now();
      const response = await fetch(url, {headers: {"Authorization": "Bearer " + token, "Accept": "text/event-stream"}});
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      const seen = [];
      for (;;) {
        const {done, value} = await reader.read();
        if (done) break;
        seen.push([Math.round(performance.now() - started), value]);
      }
      return {status: response.status, seen};
    }""",
        [url, SESSION],
    )
    preflight = wait_for_requests(rec, tag, 1, method="OPTIONS")[0]
    get = wait_for_requests(rec, tag, 1)[0]
    times = [t for t, _ in arrivals["seen"]]
    print(
        f"fetch + Authorization: preflight asked for {preflight.headers.get('access-control-request-headers')!r}; "
        f"chunks at {times} ms"
    )
    assert preflight.headers.get("access-control-request-headers") == "authorization"
    assert get.headers.get("authorization") == f"Bearer {SESSION}" and arrivals["status"] == 200
    assert "private event 2 for alice" in "".join(v for _, v in arrivals["seen"])
    assert times[-1] - times[0] >= 150, "the body is read as it arrives (events 100 ms apart), not all at once"


# --------------------------------------------------------------------------- six connections per origin


OPEN_MANY = """([url, n]) => {
  window.opened = []; window.sources = [];
  window.started = performance.now();
  for (let i = 0; i < n; i++) {
    const es = new EventSource(url + "&i=" + i);
    es.onopen = () => window.opened.push([i, performance.now() - window.started]);
    window.sources.push(es);
  }
}"""


def test_the_seventh_event_source_to_an_http1_origin_waits_for_a_free_connection(page, origins, rec) -> None:
    url, tag = stream_url(origins["api_star"], token="valid", endless="true")
    page.goto(f"{origins['page'].url}/")
    page.evaluate(OPEN_MANY, [url, 7])
    page.wait_for_function("window.opened.length >= 6", timeout=5000)
    page.wait_for_timeout(1500)  # would a seventh open, given time?
    opened = page.evaluate("window.opened")
    requests = rec.get(tag)
    assert len(opened) == 6 and len(requests) == 6, (
        f"six connections per origin: {len(opened)} EventSources opened and the API got {len(requests)} requests"
    )
    waiting = ({0, 1, 2, 3, 4, 5, 6} - {i for i, _ in opened}).pop()

    closed_at = page.evaluate("() => { window.sources[0].close(); return performance.now() - window.started; }")
    page.wait_for_function("window.opened.length >= 7", timeout=5000)
    opened_at = page.evaluate(f"window.opened.find(o => o[0] === {waiting})[1]")
    print(
        f"HTTP/1.1: 6 of 7 EventSources open within {max(t for _, t in opened):.0f} ms; the seventh waited "
        f"{opened_at:.0f} ms and opened {opened_at - closed_at:.0f} ms after another was closed; "
        f"{len({r.client_port for r in rec.get(tag)})} connections"
    )
    assert len(rec.get(tag)) == 7, "once one stream closed, the waiting one got its connection"
    assert opened_at >= closed_at, "the seventh opened only after another EventSource was closed"
    page.evaluate("window.sources.forEach(s => s.close())")


SHARED_WORKER = """
let source = null;
const ports = [];
onconnect = (event) => {
  const port = event.ports[0];
  ports.push(port);
  port.onmessage = (message) => {  // the first tab tells the worker where to connect; later tabs join
    if (source) return;
    source = new EventSource(message.data);
    source.onmessage = (e) => ports.forEach((p) => p.postMessage(e.data));
  };
};
"""

JOIN_SHARED_WORKER = """(url) => {
  window.got = [];
  const worker = new SharedWorker("/shared-worker.js");
  worker.port.onmessage = (e) => window.got.push(e.data);
  worker.port.postMessage(url);
}"""

JOIN_BROADCAST = """(url) => {
  window.got = [];
  const channel = new BroadcastChannel("events");
  channel.onmessage = (e) => window.got.push(e.data);
  // One tab holds the lock and the one EventSource; the others listen. The lock passes on when it closes.
  navigator.locks.request("events-leader", () => new Promise(() => {
    const source = new EventSource(url);
    source.onmessage = (e) => { window.got.push(e.data); channel.postMessage(e.data); };
  }));
}"""


@pytest.mark.parametrize("join", [JOIN_SHARED_WORKER, JOIN_BROADCAST], ids=["shared_worker", "broadcast_channel"])
def test_eight_tabs_share_one_stream(browser, origins, rec, join: str) -> None:
    url, tag = stream_url(origins["api_star"], token="valid", endless="true")
    context = browser.new_context()
    try:
        tabs = [context.new_page() for _ in range(8)]
        for tab in tabs:
            tab.goto(f"{origins['page'].url}/")
            tab.evaluate(join, url)
        for tab in tabs:
            tab.wait_for_function("window.got.length >= 3", timeout=5000)
        requests = rec.get(tag)
        print(f"8 tabs, one stream: the API got {len(requests)} request(s); every tab got events")
        assert len(requests) == 1, f"eight tabs should share one stream; the API got {len(requests)} requests"
    finally:
        context.close()


# --------------------------------------------------------------------------- HTTP/2


@pytest.fixture(scope="module")
def http2_site(rec: Recorder) -> Iterator[Any]:
    with serve_http2(api_app(rec, None, with_page=True)) as server:
        yield server


def test_over_http2_twelve_event_sources_share_one_connection(browser, http2_site, rec) -> None:
    url, tag = stream_url(http2_site, token="valid", endless="true")
    context = browser.new_context(ignore_https_errors=True)  # the certificate is self-signed
    try:
        tab = context.new_page()
        tab.goto(f"{http2_site.url}/")
        tab.evaluate(OPEN_MANY, [url, 12])
        tab.wait_for_function("window.opened.length >= 12", timeout=5000)
        opened = tab.evaluate("window.opened")
        requests = rec.get(tag)
        ports = {r.client_port for r in requests}
        print(
            f"HTTP/2: 12 of 12 EventSources open within {max(t for _, t in opened):.0f} ms, "
            f"{len(requests)} requests over {len(ports)} connection(s), HTTP/{requests[0].http_version}"
        )
        assert {r.http_version for r in requests} == {"2"}, "Chromium spoke HTTP/2 (over TLS, negotiated by ALPN)"
        assert len(ports) == 1, f"every stream shares one connection; the server saw {len(ports)}"
        tab.evaluate("window.sources.forEach(s => s.close())")
    finally:
        context.close()
