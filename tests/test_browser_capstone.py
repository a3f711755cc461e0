"""The capstone's page in a real browser: tokens stream in, and Stop stops the model — also on Binder.

Lab 09's solution serves a page at ``/`` that POSTs with ``fetch`` (``Accept:
text/event-stream``), reads ``response.body`` as it arrives, and on Stop both
aborts its request (``AbortController``) and sends ``POST chat/<id>/cancel``.
These tests drive the system's Chromium (Debian's ``chromium`` package) through
Playwright with ``executable_path`` — nothing is downloaded — once straight to
the app and once through a real ``jupyter server`` with jupyter-server-proxy,
the way Binder serves it (COURSE.md known error 22: there the proxy never tells
the app that the browser left, so only the cancel request can stop the model).
Each proves its claim at the embedded model: the generation closed within
200 ms of the Stop click, timed from the click as the page itself recorded it
to the close in the model's record.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import openai
import pytest
import test_server
from fastapi.responses import HTMLResponse
from test_server import PREFIX, auth

from streamcourse import llm
from streamcourse.checking import SOLUTIONS_DIR, execute_notebook
from streamcourse.checkkit import CLICK_CLOCK, page_time_to_monotonic
from streamcourse.server import serve

pytestmark = pytest.mark.browser

#: The fixture of a real jupyter server with jupyter-server-proxy (imported under its own name, so pytest finds it).
jupyter = test_server.jupyter


@pytest.fixture(scope="module")
def solution() -> dict[str, Any]:
    """The lab 09 solution's definitions, from the notebook itself (run in a thread: it needs its own event loop)."""
    with ThreadPoolExecutor(1) as pool:
        namespace = pool.submit(execute_notebook, SOLUTIONS_DIR / "lab09_capstone.ipynb").result(timeout=120)
    assert not namespace.errors, f"the solution notebook raised: {namespace.errors}"
    return namespace.values


@pytest.fixture(scope="module")
def make_app(solution: dict[str, Any]) -> Any:
    return solution["make_app"]


@dataclass
class Stopped:
    generation: llm.Generation
    delay: float  # seconds from the Stop click (the page's clock) to the model's stream closing (its record); inf: still open
    tokens_after: int  # tokens the model made after the click
    requests: list[tuple[str, str, str]]  # (method, url, Accept) of every request the page sent
    shown_before: str
    shown_after: str
    status: str


def send_then_stop(context: Any, url: str, model: Any, closes_within: float = 3.0) -> Stopped:
    """Open the page at ``url``, press Send, wait for tokens, press Stop; measure what the model did."""
    page = context.new_page()
    requests: list[tuple[str, str, str]] = []
    page.on("request", lambda r: requests.append((r.method, r.url, r.headers.get("accept", ""))))
    try:
        page.goto(url)
        page.evaluate(CLICK_CLOCK)
        page.fill("#prompt", "Tell me about streams")
        page.click("#send")
        # Tokens appear one by one while the model is still generating.
        page.wait_for_function("document.getElementById('output').textContent.split(' ').length >= 4", timeout=10000)
        shown_before = page.inner_text("#output")
        gen = model.state.generations[-1]
        assert not gen.finished, "the page should show tokens while the model is still generating"
        page.click("#stop")
        gen.wait_closed(closes_within)
        page.wait_for_function(
            "['stopped', 'done (cancelled)'].includes(document.getElementById('status').textContent)", timeout=5000
        )
        clicked = page_time_to_monotonic(page.evaluate("window.__stopClickedAt"))
        delay = float("inf") if gen.closed_at is None else gen.closed_at - clicked
        return Stopped(
            gen,
            delay,
            sum(1 for t in gen.token_times if t > clicked),
            requests,
            shown_before,
            page.inner_text("#output"),
            page.inner_text("#status"),
        )
    finally:
        page.close()


def assert_stopped_at_once(stopped: Stopped, where: str) -> None:
    gen = stopped.generation
    print(
        f"{where}: Stop -> model closed after {stopped.delay * 1000:.0f} ms, {stopped.tokens_after} tokens after the "
        f"click; {gen.tokens_sent} of 200 tokens made"
    )
    assert gen.closed_at is not None, f"{where}: after Stop the model's generation was still open 3 s later"
    assert not gen.finished and gen.tokens_sent < 200, "Stop should end the generation early"
    assert stopped.delay < 0.2, (
        f"{where}: the model's stream closed {stopped.delay * 1000:.0f} ms after Stop (expected < 200 ms)"
    )
    assert stopped.tokens_after <= 2, (
        f"{where}: the model made {stopped.tokens_after} tokens after Stop (at most 2 expected)"
    )
    assert stopped.shown_before and gen.text.startswith(stopped.shown_after.strip()), (
        "the page shows a prefix of the model's reply"
    )


def chat_accepts(stopped: Stopped) -> list[str]:
    return [accept for method, url, accept in stopped.requests if method == "POST" and url.endswith("/chat")]


def test_the_page_streams_tokens_and_stop_closes_the_model_stream(browser, make_app) -> None:
    model = llm.make_app(ttft=0.05, token_interval=0.1, length=200)
    with serve(model, name="browser-capstone-llm") as upstream:
        client = openai.AsyncOpenAI(base_url=f"{upstream.url}/v1", api_key="not-needed", max_retries=0)
        with serve(make_app(client, ping_interval=1.0), name="browser-capstone-app") as app:
            context = browser.new_context()
            try:
                stopped = send_then_stop(context, f"{app.url}/", model)
            finally:
                context.close()
    assert_stopped_at_once(stopped, "straight to the app")
    assert chat_accepts(stopped) == ["text/event-stream"], (
        f"the page's fetch should send Accept: text/event-stream; sent {stopped.requests}"
    )


def test_through_jupyter_server_proxy_stop_still_stops_the_model_within_200ms(
    browser, make_app, jupyter: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Binder: the page and its requests go through a real jupyter-server-proxy, which never passes a closing on."""
    monkeypatch.setenv("JUPYTERHUB_SERVICE_PREFIX", PREFIX)  # serve() then sets root_path and a proxied link
    model = llm.make_app(ttft=0.05, token_interval=0.1, length=200)
    with serve(model, name="binder-capstone-llm") as upstream:
        client = openai.AsyncOpenAI(base_url=f"{upstream.url}/v1", api_key="not-needed", max_retries=0)
        with serve(make_app(client, ping_interval=1.0), name="binder-capstone-app") as app:
            assert app.link == f"{PREFIX}proxy/{app.port}/"
            context = browser.new_context(extra_http_headers=auth())
            try:
                stopped = send_then_stop(context, jupyter.removesuffix(PREFIX) + app.link, model)
            finally:
                context.close()
    assert_stopped_at_once(stopped, "through jupyter-server-proxy")
    assert chat_accepts(stopped) == ["text/event-stream"], (
        "through the proxy the page must ask for text/event-stream, or nothing streams"
    )
    cancels = [url for method, url, _ in stopped.requests if method == "POST" and url.endswith("/cancel")]
    assert cancels and all(f"{PREFIX}proxy/{app.port}/chat/" in url for url in cancels), (
        f"Stop should cancel by id through the proxy (a relative URL); the page sent {stopped.requests}"
    )


def test_through_jupyter_server_proxy_aborting_alone_leaves_the_model_generating(
    browser, solution: dict[str, Any], jupyter: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The control: the same page with its cancel request taken out. Behind the proxy ``abort()`` reaches no one."""
    cancel_line = 'if (generation) fetch("chat/" + encodeURIComponent(generation) + "/cancel", { method: "POST" });'
    assert cancel_line in solution["PAGE"], "the solution's Stop handler changed: update this control"
    abort_only = solution["PAGE"].replace(cancel_line, "")
    monkeypatch.setenv("JUPYTERHUB_SERVICE_PREFIX", PREFIX)
    model = llm.make_app(ttft=0.05, token_interval=0.1, length=200)
    with serve(model, name="binder-abort-llm") as upstream:
        client = openai.AsyncOpenAI(base_url=f"{upstream.url}/v1", api_key="not-needed", max_retries=0)
        app = solution["make_app"](client, ping_interval=1.0)
        app.add_api_route(
            "/abort-only", lambda: HTMLResponse(abort_only), methods=["GET"]
        )  # fetch("chat") resolves to the same /chat
        with serve(app, name="binder-abort-app") as served:
            context = browser.new_context(extra_http_headers=auth())
            try:
                stopped = send_then_stop(
                    context, jupyter.removesuffix(PREFIX) + served.link + "abort-only", model, closes_within=1.5
                )
            finally:
                context.close()
    print(
        f"abort() alone through the proxy: {stopped.tokens_after} tokens made after the click, "
        f"model stream still open 1.5 s later: {stopped.delay == float('inf')}"
    )
    assert stopped.status == "stopped", "the page itself stopped reading"
    assert stopped.delay == float("inf") and stopped.tokens_after >= 5, (
        "through jupyter-server-proxy the model should go on generating after abort() alone — if it stopped, the "
        "proxy now passes the browser's leaving on, and the lessons' account of known error 22 must change"
    )
