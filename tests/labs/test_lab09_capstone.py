"""Checks for lab 09 — ``make_app(client, *, ping_interval)``: the production chat stream.

Each check serves a fresh embedded model (``streamcourse.llm``) and the learner's
app on real sockets and talks to them as a browser or a program would: httpx-sse
for events, raw lines for the keep-alive comments, the idle-cutting proxy for the
keep-alive proof. Cancellation is measured where it matters, at the model: its
record says when the generation closed and how many tokens it made after that.
The request body's ``model`` picks the model's misbehaviour (``fault-429``,
``fault-midstream``, ``fault-stall``). The page is run in Chromium (Debian's,
through Playwright): what its ``fetch`` sends is read off the wire, and Stop is
timed from the click, recorded in the page, to the model's record.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import re
import statistics
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from streamcourse import llm
from streamcourse.checkkit import (
    CLICK_CLOCK,
    Model,
    Reply,
    Stop,
    after_events,
    chromium,
    eventually,
    page_time_to_monotonic,
    read_events,
    require_http_error_before_stream,
    require_stream,
    start_model,
    unique_prompt,
    wait_until,
)
from streamcourse.proxies import idle_cutting_proxy
from streamcourse.server import serve

CHAT = "lab09.chat_stream"


def ask(**extra: Any) -> dict[str, Any]:
    """A request body with a prompt no other request uses (so the check finds its own generation)."""
    return {"messages": [{"role": "user", "content": unique_prompt()}], **extra}


@dataclass
class Stack:
    url: str  # the learner's app
    model: Model  # the embedded model, whose record the checks read

    def generation(self, reply: Reply) -> llm.Generation:
        return self.model.generation(reply.prompt)


@pytest.fixture
def stack(submission, servers) -> Iterator[Callable[..., Stack]]:
    """Start a model with the given pacing and the learner's app in front of it."""

    def start(*, ping_interval: float = 15.0, model: Model | None = None, **pacing: Any) -> Stack:
        if model is None:
            model = start_model(
                servers, "lab09-check-llm", **{"ttft": 0.02, "token_interval": 0.02, "length": 12, **pacing}
            )
        app = serve(
            submission.make_app(model.client(), ping_interval=ping_interval), name=f"lab09-check-app-{len(servers)}"
        )
        servers.append(app)
        return Stack(app.url, model)

    # An answer that patches FastAPI's private ping interval patches this whole process when
    # the learner's code runs here (check() in a kernel): put it back, so one check cannot
    # change the next.
    routing = importlib.import_module("fastapi.routing")
    interval = vars(routing).get("_PING_INTERVAL")
    yield start
    if interval is not None:
        routing.__dict__["_PING_INTERVAL"] = interval


async def chat(
    url: str, body: dict[str, Any] | None = None, *, stop: Stop | None = None, timeout: float = 8.0
) -> Reply:
    """POST /chat and read its events with httpx-sse until the stream ends (or ``stop`` says hang up)."""
    body = ask() if body is None else body
    reply = await read_events(
        f"{url}/chat",
        body,
        stop=stop,
        timeout=timeout,
        hint="is the body declared as a parameter, and does the stream end after done/error?",
    )
    messages = body.get("messages") or [{}]
    reply.prompt = str(messages[-1].get("content", "")) if isinstance(messages[-1], dict) else ""
    return reply


def token_texts(reply: Reply) -> list[str]:
    return [reply.payload(i, "text")["text"] for i, name in enumerate(reply.names) if name == "token"]


def generation_id(reply: Reply) -> str:
    assert reply.names and reply.names[0] == "start", f"the first event should be start; got {reply.names[:3]}"
    value = reply.payload(0, "id")["id"]
    assert isinstance(value, str) and value, f'start\'s data should be {{"id": "<generation id>"}}; got {value!r}'
    return value


def after_tokens(n: int) -> Stop:
    return after_events("token", n)


async def cancel(url: str, generation: str) -> httpx.Response:
    async with httpx.AsyncClient(timeout=5) as http:
        return await http.post(f"{url}/chat/{generation}/cancel")


# --------------------------------------------------------------------------- the happy path


@pytest.mark.exercise(CHAT)
async def test_a_chat_streams_start_then_tokens_then_one_done_with_usage(stack) -> None:
    s = stack()
    reply = await chat(s.url)
    require_stream(reply)
    assert not reply.broken, (
        f"the stream broke ({reply.broken}) instead of ending with a done event — does your code index "
        "chunk.choices[0]? The usage chunk at the end has an EMPTY choices list"
    )
    generation_id(reply)
    names = reply.names
    assert names.count("done") == 1 and names[-1] == "done", (
        f"expected exactly one done event, last; the stream ended with {names[-3:]} — if it stopped early, does your "
        "code index chunk.choices[0]? The usage chunk at the end has an EMPTY choices list: loop over chunk.choices"
    )
    assert set(names[1:-1]) == {"token"}, (
        f"expected only token events between start and done; got {sorted(set(names[1:-1]))}"
    )
    done = reply.payload(-1, "usage", "finish_reason")
    gen = s.generation(reply)
    usage = done["usage"]
    assert isinstance(usage, dict) and usage.get("completion_tokens") == gen.tokens_sent, (
        f"done should carry the model's usage (completion_tokens={gen.tokens_sent}); got {usage!r} — ask for it "
        'with stream_options={"include_usage": True} and keep it from the last chunk'
    )
    assert usage.get("prompt_tokens") and usage.get("total_tokens") == usage["prompt_tokens"] + gen.tokens_sent, (
        f"usage should have prompt_tokens and total_tokens as the model sent them; got {usage!r}"
    )
    assert done["finish_reason"] == "stop", (
        f"a reply that ran to its end has finish_reason 'stop'; got {done['finish_reason']!r}"
    )


@pytest.mark.exercise(CHAT)
async def test_the_token_events_join_to_the_model_reply(stack) -> None:
    s = stack()
    reply = await chat(s.url)
    require_stream(reply)
    gen = s.generation(reply)
    joined = "".join(token_texts(reply))
    assert joined == gen.text, f"the token events' texts should join to the model's reply {gen.text!r}; got {joined!r}"


@pytest.mark.exercise(CHAT)
@pytest.mark.behaviour(
    "every event stream goes out with no-cache and X-Accel-Buffering: no; FastAPI's EventSourceResponse adds both"
)
async def test_the_stream_has_no_cache_and_no_proxy_buffering_headers(stack) -> None:
    s = stack()
    reply = await chat(s.url)
    require_stream(reply)
    assert "no-cache" in reply.headers.get("cache-control", ""), (
        f"an event stream should be sent with Cache-Control: no-cache; got {reply.headers.get('cache-control')!r}"
    )
    assert reply.headers.get("x-accel-buffering", "").lower() == "no", (
        "an event stream should be sent with X-Accel-Buffering: no, or nginx-like proxies hold it back whole"
    )


@pytest.mark.exercise(CHAT)
@pytest.mark.parametrize(
    "body",
    [
        {"messages": []},
        {"messages": [{"role": "robot", "content": "hi"}]},
        {"prompt": "no messages at all"},
    ],
    ids=["empty_messages", "unknown_role", "no_messages"],
)
async def test_an_invalid_body_is_refused_with_422_before_any_stream(stack, body) -> None:
    s = stack()
    reply = await chat(s.url, body, timeout=5)
    assert reply.status == 422, (
        f"a request body {body!r} should be refused with 422 before streaming; got {reply.status} "
        f"{reply.content_type!r} — declare the body as a pydantic parameter (ChatRequest) so FastAPI validates it first"
    )
    assert not s.model.generations, "an invalid request should never reach the model"


@pytest.mark.exercise(CHAT)
async def test_a_rate_limited_model_gives_an_http_error_not_a_stream(stack) -> None:
    s = stack()
    reply = await chat(s.url, ask(model="fault-429"), timeout=5)
    require_http_error_before_stream(reply, "POST /chat")


@pytest.mark.exercise(CHAT)
async def test_a_failure_mid_stream_becomes_one_error_event_and_a_clean_end(stack) -> None:
    s = stack()
    reply = await chat(s.url, ask(model="fault-midstream"))
    require_stream(reply)
    assert not reply.broken, (
        f"the connection broke ({reply.broken}): catch openai.APIError while reading the model, "
        "send an error event and end the stream normally"
    )
    names = reply.names
    assert names[:4] == ["start"] + ["token"] * 3, (
        f"the model sent 3 tokens before failing: expected start and 3 tokens first; got {names}"
    )
    assert names[-1] == "error" and "done" not in names, (
        f"expected the stream to end with one error event (no done); got {names}"
    )
    error = reply.payload(-1, "message", "code")
    assert isinstance(error["message"], str) and error["message"], (
        "the error event's message should say what went wrong"
    )
    assert error["code"] == "server_error", (
        f"the error event's code should be the model's error code 'server_error'; got {error['code']!r}"
    )


# --------------------------------------------------------------------------- keep-alive


async def read_raw(url: str, body: dict[str, Any], seconds: float) -> tuple[list[tuple[str, float]], str]:
    """Every line the stream sends during ``seconds`` with its arrival time, and how it ended early (if it did)."""
    lines: list[tuple[str, float]] = []
    ended = ""

    async def read() -> None:
        nonlocal ended
        async with httpx.AsyncClient(timeout=5) as http:
            async with http.stream(
                "POST", f"{url}/chat", json=body, headers={"Accept": "text/event-stream"}
            ) as response:
                async for line in response.aiter_lines():
                    lines.append((line, time.monotonic()))
        ended = "the stream ended"

    try:
        await asyncio.wait_for(read(), seconds)
    except TimeoutError:
        pass  # still open after `seconds`: what a quiet-but-alive stream does
    except httpx.HTTPError as exc:
        ended = f"the connection broke ({type(exc).__name__})"
    return lines, ended


@pytest.mark.exercise(CHAT)
async def test_a_silent_model_gets_a_ping_comment_every_interval(stack) -> None:
    interval = 0.2
    s = stack(ping_interval=interval)
    lines, ended = await read_raw(s.url, ask(model="fault-stall"), seconds=1.2)
    tokens = [t for line, t in lines if line == "event: token"]
    pings = [t for line, t in lines if line.startswith(":")]
    assert len(tokens) == 3, f"the model sends 3 tokens before going silent; got {len(tokens)} token events"
    assert not ended, f"{ended} while the model was only silent: keep the stream open and send pings"
    assert len(pings) >= 3, (
        f"expected a comment line (': ping') every {interval:g} s while the model was silent; got {len(pings)} in "
        f"{1.2 - (tokens[-1] - lines[0][1]):.1f} s of silence — wait on the pending read with a timeout, and ping when it runs out"
    )
    gaps = [b - a for a, b in zip([tokens[-1]] + pings, pings, strict=False)]
    typical = statistics.median(gaps)
    assert interval * 0.5 <= typical <= interval * 2.5, (
        f"pings should come about every ping_interval={interval:g} s of silence; the typical gap was {typical:.2f} s"
    )


@pytest.mark.exercise(CHAT)
async def test_pings_keep_a_silent_stream_alive_through_an_idle_cutting_proxy(stack) -> None:
    s = stack(ping_interval=0.2)
    proxy = idle_cutting_proxy(s.url, idle_timeout=0.6, name="lab09-check-idle-proxy")
    try:
        lines, ended = await read_raw(proxy.url, ask(model="fault-stall"), seconds=1.6)
    finally:
        proxy.stop()
    assert sum(1 for line, _ in lines if line == "event: token") == 3, "the 3 tokens before the silence should arrive"
    assert not ended, (
        f"{ended} during the model's silence: a proxy that cuts connections idle for 0.6 s cut the stream — "
        "send a ': ping' comment every ping_interval seconds when nothing else was sent"
    )


@pytest.mark.exercise(CHAT)
async def test_tokens_slower_than_the_ping_interval_are_all_delivered(stack) -> None:
    s = stack(ping_interval=0.05, ttft=0.15, token_interval=0.15, length=4)
    reply = await chat(s.url)
    require_stream(reply)
    gen = s.generation(reply)
    joined = "".join(token_texts(reply))
    assert gen.finished and joined == gen.text, (
        f"with pings every 0.05 s and a token every 0.15 s, every token should still arrive; got {joined!r} of the "
        f"model's reply {gen.text!r} (model finished: {gen.finished}) — asyncio.wait_for(anext(...)) cancels the "
        "pending read, and with it the upstream, at the first ping: wait on a task with asyncio.wait instead"
    )
    assert reply.names[-1:] == ["done"], (
        f"after the last slow token a done event should follow; the stream ended with {reply.names[-2:]}"
    )


def ping_gaps(lines: list[tuple[str, float]]) -> list[float]:
    """Seconds between the last token and each ping, and between pings."""
    tokens = [t for line, t in lines if line == "event: token"]
    pings = [t for line, t in lines if line.startswith(":")]
    return [b - a for a, b in zip(tokens[-1:] + pings, pings, strict=False)]


@pytest.mark.exercise(CHAT)
async def test_two_apps_each_ping_at_their_own_interval(stack) -> None:
    quick = stack(ping_interval=0.2)
    slow = stack(ping_interval=1.0, model=quick.model)  # made second, asked second
    first = ask(model="fault-stall")
    quick_read = asyncio.create_task(read_raw(quick.url, first, seconds=1.5))
    prompt = first["messages"][-1]["content"]
    assert await eventually(lambda: any(prompt in g.prompt for g in quick.model.generations), 5), (
        "the first app never asked the model"
    )
    slow_lines, _ = await read_raw(slow.url, ask(model="fault-stall"), seconds=1.2)  # asked second
    quick_lines, _ = await quick_read
    quick_gaps, slow_gaps = ping_gaps(quick_lines), ping_gaps(slow_lines)
    assert len(quick_gaps) >= 3 and statistics.median(quick_gaps) <= 0.5, (
        f"an app made with ping_interval=0.2 pinged {len(quick_gaps)} times, gaps {[round(g, 2) for g in quick_gaps]}, "
        "while another app with ping_interval=1.0 ran in the same process: send your own pings — FastAPI's built-in "
        "interval is one private setting for the whole process (patching fastapi.routing._PING_INTERVAL changes every app)"
    )
    assert all(g >= 0.5 for g in slow_gaps), (
        f"an app made with ping_interval=1.0 pinged after {min(slow_gaps):.2f} s of silence: each app keeps its own interval"
    )


# --------------------------------------------------------------------------- cancellation


@pytest.mark.exercise(CHAT)
async def test_a_client_that_leaves_closes_the_model_stream(stack) -> None:
    s = stack(token_interval=0.1, length=80)
    reply = await chat(s.url, stop=after_tokens(3))
    require_stream(reply)
    assert reply.left_at is not None, f"expected 3 token events, got {reply.names}"
    gen = s.generation(reply)
    closed = await gen.wait_closed_async(2.0)
    assert closed and not gen.finished, (
        "the client left after 3 tokens but the model's stream was not closed within 2 s: when the client goes, "
        "cancel the pending read and close the upstream in finally"
    )
    late = sum(1 for t in gen.token_times if t > reply.left_at)
    assert late <= 2, (
        f"the model made {late} tokens after the client had left (at most 2 expected): close the upstream at once"
    )
    delay = gen.closed_at - reply.left_at
    assert delay < 1.0, f"the model's stream closed {delay:.2f} s after the client left; it should be at once (< 1 s)"


@pytest.mark.exercise(CHAT)
async def test_the_cancel_endpoint_stops_a_running_generation(stack) -> None:
    s = stack(token_interval=0.1, length=80)
    cancelled: dict[str, Any] = {}

    async def cancel_after_two(reply: Reply, http: httpx.AsyncClient) -> bool:
        if reply.names.count("token") == 2 and not cancelled:
            cancelled["at"] = time.monotonic()
            cancelled["response"] = await http.post(f"{s.url}/chat/{generation_id(reply)}/cancel")
        return False

    reply = await chat(s.url, stop=cancel_after_two)
    require_stream(reply)
    assert cancelled, f"expected 2 token events before cancelling; got {reply.names}"
    answer: httpx.Response = cancelled["response"]
    assert answer.is_success, (
        f"POST /chat/<id>/cancel for a running generation should succeed; got {answer.status_code} {answer.text[:200]!r}"
    )
    assert not reply.broken, f"after a cancel the stream should end cleanly; it broke ({reply.broken})"
    assert reply.names[-1] == "done" and reply.payload(-1, "finish_reason")["finish_reason"] == "cancelled", (
        f"a cancelled stream should end with a done event whose finish_reason is 'cancelled'; got {reply.events[-1][:2]}"
    )
    gen = s.generation(reply)
    assert await gen.wait_closed_async(2.0) and not gen.finished, "after a cancel the model's stream should be closed"
    late = sum(1 for t in gen.token_times if t > cancelled["at"])
    assert late <= 2, (
        f"the model made {late} tokens after the cancel (at most 2 expected): close the upstream when stopping"
    )


@pytest.mark.exercise(CHAT)
@pytest.mark.behaviour(
    "an id that is not running is a 404, as in lab 08 (whose wrong answer unknown_id_is_not_an_error shows the mistake)"
)
async def test_cancelling_an_unknown_generation_is_404(stack) -> None:
    s = stack()
    answer = await cancel(s.url, "no-such-generation")
    assert answer.status_code == 404, f"POST /chat/<unknown id>/cancel should be 404; got {answer.status_code}"


async def forgotten(url: str, generation: str, within: float = 2.0) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if (await cancel(url, generation)).status_code == 404:
            return True
        await asyncio.sleep(0.05)
    return False


@pytest.mark.exercise(CHAT)
async def test_finished_failed_and_abandoned_generations_are_forgotten(stack) -> None:
    s = stack()
    finished = await chat(s.url)
    failed = await chat(s.url, ask(model="fault-midstream"))
    abandoned = await chat(s.url, stop=after_tokens(1))
    for how, reply in [("finished", finished), ("failed mid-stream", failed), ("abandoned by its client", abandoned)]:
        require_stream(reply)
        assert await forgotten(s.url, generation_id(reply)), (
            f"a generation that {how} is still in the registry (cancelling its id did not give 404 within 2 s): "
            "remove the entry in a finally block, which runs however the stream ends"
        )


# --------------------------------------------------------------------------- the page, in Chromium


@dataclass
class PageRun:
    """What the learner's page did in a real browser, read off the wire and the model's record."""

    requests: list[tuple[str, str, str]]  # (method, path, Accept header) of each request the page sent
    generation: llm.Generation
    stopped_at: float | None  # time.monotonic() of the Stop click, recorded in the page itself
    shown: str  # the page's text when the check was done


def run_page(s: Stack, press_stop: bool) -> PageRun:
    """Open GET / in Chromium, type a prompt, press Send, wait for tokens, and maybe press Stop."""
    prompt = unique_prompt("Tell me about streams")
    requests: list[tuple[str, str, str]] = []
    with chromium() as browser:
        page = browser.new_page()
        page.on("request", lambda r: requests.append((r.method, httpx.URL(r.url).path, r.headers.get("accept", ""))))
        page.goto(f"{s.url}/")
        page.evaluate(CLICK_CLOCK)
        page.locator("textarea, input[type=text], input:not([type])").first.fill(prompt, timeout=3000)
        page.get_by_role("button", name=re.compile("send", re.I)).click(timeout=3000)
        assert wait_until(lambda: any(prompt in g.prompt for g in s.model.generations), 5), (
            "after typing a prompt and pressing Send, no request reached the model within 5 s: the page should POST "
            "the prompt to `chat` (a relative URL) with fetch"
        )
        gen = s.model.generation(prompt)
        assert wait_until(lambda: gen.tokens_sent >= 4, 5), "the model was asked but made no tokens"
        first = json.dumps(gen.tokens[0] + gen.tokens[1])
        page.wait_for_function(f"document.body.innerText.includes({first})", timeout=5000)
        if press_stop:
            page.get_by_role("button", name=re.compile("stop", re.I)).click(timeout=3000)
            gen.wait_closed(3.0)
        stopped = page.evaluate("window.__stopClickedAt")
        shown = page.inner_text("body")
    stopped_at = None if stopped is None else page_time_to_monotonic(stopped)
    return PageRun(requests, gen, stopped_at, shown)


@pytest.mark.exercise(CHAT)
def test_the_page_streams_tokens_with_a_fetch_that_accepts_text_event_stream(stack) -> None:
    s = stack(ttft=0.05, token_interval=0.1, length=60)
    run = run_page(s, press_stop=False)
    chats = [accept for method, path, accept in run.requests if method == "POST" and path == "/chat"]
    assert chats == ["text/event-stream"], (
        f"the page's fetch to chat should send exactly Accept: text/event-stream (jupyter-server-proxy buffers "
        f"anything else whole); it sent {chats or 'no POST to chat'}"
    )
    assert not run.generation.finished, "the page should show the reply while the model is still writing it"


@pytest.mark.exercise(CHAT)
def test_stop_on_the_page_stops_the_model_within_200ms_and_cancels_by_id(stack) -> None:
    s = stack(ttft=0.05, token_interval=0.1, length=200)
    run = run_page(s, press_stop=True)
    gen = run.generation
    assert run.stopped_at is not None, "the page should have a button labelled Stop"
    assert gen.closed_at is not None and not gen.finished, (
        "after Stop the model was still generating 3 s later: Stop should abort the fetch (controller.abort()) "
        "and send POST chat/<id>/cancel"
    )
    delay = gen.closed_at - run.stopped_at
    assert delay < 0.2, f"the model's stream closed {delay * 1000:.0f} ms after the Stop click: expected under 200 ms"
    cancels = [
        path for method, path, _ in run.requests if method == "POST" and re.fullmatch(r"/chat/[^/]+/cancel", path)
    ]
    assert any(path.split("/")[2] not in ("null", "undefined") for path in cancels), (
        "Stop only closed the page's own connection: behind jupyter-server-proxy (Binder) the server never hears of "
        "that, and the model goes on — Stop must also send POST chat/<id>/cancel with the id from the start event"
    )
