"""The capstone's page in a real browser: tokens stream in, and Stop stops the model.

Lab 09's solution serves a page at ``/`` that POSTs with ``fetch`` (``Accept:
text/event-stream``), reads ``response.body`` as it arrives and aborts with an
``AbortController`` on Stop. This test drives the system's Chromium (Debian's
``chromium`` package) through Playwright with ``executable_path`` — nothing is
downloaded — and proves the claim at the embedded model: after Stop, its
generation closed and made at most two more tokens.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import openai
import pytest

from streamcourse import llm
from streamcourse.checking import SOLUTIONS_DIR, execute_notebook
from streamcourse.server import serve

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def make_app() -> Any:
    """The lab 09 solution's ``make_app``, from the notebook itself (run in a thread: it needs its own event loop)."""
    with ThreadPoolExecutor(1) as pool:
        namespace = pool.submit(execute_notebook, SOLUTIONS_DIR / "lab09_capstone.ipynb").result(timeout=120)
    assert not namespace.errors, f"the solution notebook raised: {namespace.errors}"
    return namespace.values["make_app"]


def test_the_page_streams_tokens_and_stop_closes_the_model_stream(browser, make_app) -> None:
    model = llm.make_app(ttft=0.05, token_interval=0.1, length=200)
    with serve(model, name="browser-capstone-llm") as upstream:
        client = openai.AsyncOpenAI(base_url=f"{upstream.url}/v1", api_key="not-needed", max_retries=0)
        with serve(make_app(client, ping_interval=1.0), name="browser-capstone-app") as app:
            page = browser.new_page()
            try:
                accepts: list[str] = []
                page.on(
                    "request",
                    lambda r: accepts.append(r.headers.get("accept", "")) if r.url.endswith("/chat") else None,
                )
                page.goto(f"{app.url}/")
                page.fill("#prompt", "Tell me about streams")
                page.click("#send")
                # Tokens appear one by one while the model is still generating.
                page.wait_for_function(
                    "document.getElementById('output').textContent.split(' ').length >= 4", timeout=5000
                )
                shown_before_stop = page.inner_text("#output")
                gen = model.state.generations[-1]
                assert not gen.finished, "the page should show tokens while the model is still generating"

                stopped_at = time.monotonic()
                page.click("#stop")
                assert gen.wait_closed(2.0), "after Stop the model's generation should close within 2 s"
                page.wait_for_function("document.getElementById('status').textContent === 'stopped'", timeout=2000)
                shown = page.inner_text("#output")
            finally:
                page.close()

    late = sum(1 for t in gen.token_times if t > stopped_at)
    print(
        f"Stop -> model closed after {(gen.closed_at - stopped_at) * 1000:.0f} ms, {late} tokens after the click; "
        f"{gen.tokens_sent} of 200 tokens made"
    )
    assert not gen.finished and gen.tokens_sent < 200, "Stop should end the generation early"
    assert late <= 2, f"the model made {late} tokens after Stop (at most 2 expected)"
    assert gen.closed_at - stopped_at < 1.0, "the model's stream should close at once after Stop"
    assert accepts == ["text/event-stream"], f"the page's fetch should send Accept: text/event-stream; sent {accepts}"
    assert shown_before_stop and gen.text.startswith(shown.strip()), "the page shows a prefix of the model's reply"
