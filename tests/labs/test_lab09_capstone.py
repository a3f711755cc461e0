"""Checks for lab 09 — ``make_app(client, *, ping_interval)``: the production chat stream.

Each check serves a fresh embedded model (``streamcourse.llm``) and the learner's
app on real sockets and talks to them as a browser or a program would: httpx-sse
for events, raw lines for the keep-alive comments, the idle-cutting proxy for the
keep-alive proof. Cancellation is measured where it matters, at the model: its
record says when the generation closed and how many tokens it made after that.
The request body's ``model`` picks the model's misbehaviour (``fault-429``,
``fault-midstream``, ``fault-stall``).
"""

from __future__ import annotations

import asyncio
import json
import re
import statistics
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import openai
import pytest
from httpx_sse import aconnect_sse

from streamcourse import llm
from streamcourse.proxies import idle_cutting_proxy
from streamcourse.server import Server, serve

CHAT = "lab09.chat_stream"
BODY: dict[str, Any] = {"messages": [{"role": "user", "content": "Tell me about streams"}]}


@dataclass
class Stack:
    url: str  # the learner's app
    model: Any  # the embedded model's FastAPI app: .state.generations is its record

    @property
    def generations(self) -> list[llm.Generation]:
        return self.model.state.generations


@pytest.fixture
def stack(submission) -> Iterator[Callable[..., Stack]]:
    """Start a model with the given pacing and the learner's app in front of it."""
    servers: list[Server] = []

    def start(*, ping_interval: float = 15.0, **pacing: Any) -> Stack:
        model = llm.make_app(**{"ttft": 0.02, "token_interval": 0.02, "length": 12, **pacing})
        upstream = serve(model, name=f"lab09-check-llm-{len(servers)}")
        servers.append(upstream)
        client = openai.AsyncOpenAI(base_url=f"{upstream.url}/v1", api_key="not-needed", max_retries=0)
        app = serve(submission.make_app(client, ping_interval=ping_interval), name=f"lab09-check-app-{len(servers)}")
        servers.append(app)
        return Stack(app.url, model)

    yield start
    stopping = [threading.Thread(target=server.stop) for server in servers]  # each stop waits ~0.1 s: together
    for thread in stopping:
        thread.start()
    for thread in stopping:
        thread.join()


@dataclass
class Reply:
    status: int = 0
    headers: httpx.Headers = field(default_factory=httpx.Headers)
    events: list[tuple[str, str, float]] = field(default_factory=list)  # (event, data, arrival time)
    broken: str = ""  # how the connection broke, if it did
    body: str = ""
    left_at: float | None = None  # when the check hung up, if it did

    @property
    def names(self) -> list[str]:
        return [name for name, _, _ in self.events]

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "")


Stop = Callable[[Reply, httpx.AsyncClient], Awaitable[bool]]


async def chat(url: str, body: dict[str, Any] = BODY, *, stop: Stop | None = None, timeout: float = 8.0) -> Reply:
    """POST /chat and read its events with httpx-sse until the stream ends (or ``stop`` says hang up)."""
    reply = Reply()

    async def read() -> None:
        # 3 s without a byte is far beyond any healthy local stream, and a stuck one fails sooner
        async with httpx.AsyncClient(timeout=3) as http:
            async with aconnect_sse(http, "POST", f"{url}/chat", json=body) as source:
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
            f"the response to POST /chat did not end within {timeout:g} s (events so far: {reply.names[:8]}) — "
            "is the body declared as a parameter, and does the stream end after done/error?",
            pytrace=False,
        )
    except httpx.HTTPError as exc:  # e.g. RemoteProtocolError: the server dropped the connection mid-stream
        reply.broken = f"{type(exc).__name__}: {exc}"
    return reply


def require_stream(reply: Reply) -> None:
    assert reply.status == 200 and reply.content_type.startswith("text/event-stream"), (
        f"expected 200 with Content-Type text/event-stream, got {reply.status} {reply.content_type!r} {reply.body[:200]!r}"
    )


def payload(reply: Reply, index: int, *keys: str) -> dict[str, Any]:
    name, data, _ = reply.events[index]
    try:
        value = json.loads(data)
        assert isinstance(value, dict) and all(k in value for k in keys)
    except (ValueError, AssertionError):
        shape = ", ".join(f'"{k}": ...' for k in keys)
        pytest.fail(f"the {name} event's data must be JSON like {{{shape}}}; got {data!r}", pytrace=False)
    return value


def token_texts(reply: Reply) -> list[str]:
    return [payload(reply, i, "text")["text"] for i, name in enumerate(reply.names) if name == "token"]


def generation_id(reply: Reply) -> str:
    assert reply.names and reply.names[0] == "start", f"the first event should be start; got {reply.names[:3]}"
    value = payload(reply, 0, "id")["id"]
    assert isinstance(value, str) and value, f'start\'s data should be {{"id": "<generation id>"}}; got {value!r}'
    return value


def after_tokens(n: int) -> Stop:
    async def stop(reply: Reply, http: httpx.AsyncClient) -> bool:
        return reply.names.count("token") >= n

    return stop


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
    done = payload(reply, -1, "usage", "finish_reason")
    gen = s.generations[-1]
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
    gen = s.generations[-1]
    joined = "".join(token_texts(reply))
    assert joined == gen.text, f"the token events' texts should join to the model's reply {gen.text!r}; got {joined!r}"


@pytest.mark.exercise(CHAT)
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
    assert not s.generations, "an invalid request should never reach the model"


@pytest.mark.exercise(CHAT)
async def test_a_rate_limited_model_gives_an_http_error_not_a_stream(stack) -> None:
    s = stack()
    reply = await chat(s.url, {**BODY, "model": "fault-429"}, timeout=5)
    assert reply.status in (429, 502, 503), (
        f"when the model answers 429 before streaming, POST /chat should answer with an HTTP error (429 or 502); "
        f"got {reply.status} {reply.content_type!r} — once a 200 stream has started its status can't change, so "
        "open the upstream stream before the response starts (in a dependency), not inside the generator"
    )
    assert not reply.content_type.startswith("text/event-stream"), "an HTTP error has a JSON body, not an event stream"


@pytest.mark.exercise(CHAT)
async def test_a_failure_mid_stream_becomes_one_error_event_and_a_clean_end(stack) -> None:
    s = stack()
    reply = await chat(s.url, {**BODY, "model": "fault-midstream"})
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
    error = payload(reply, -1, "message", "code")
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
    lines, ended = await read_raw(s.url, {**BODY, "model": "fault-stall"}, seconds=1.2)
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
        lines, ended = await read_raw(proxy.url, {**BODY, "model": "fault-stall"}, seconds=1.6)
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
    gen = s.generations[-1]
    joined = "".join(token_texts(reply))
    assert gen.finished and joined == gen.text, (
        f"with pings every 0.05 s and a token every 0.15 s, every token should still arrive; got {joined!r} of the "
        f"model's reply {gen.text!r} (model finished: {gen.finished}) — asyncio.wait_for(anext(...)) cancels the "
        "pending read, and with it the upstream, at the first ping: wait on a task with asyncio.wait instead"
    )
    assert reply.names[-1:] == ["done"], (
        f"after the last slow token a done event should follow; the stream ended with {reply.names[-2:]}"
    )


# --------------------------------------------------------------------------- cancellation


@pytest.mark.exercise(CHAT)
async def test_a_client_that_leaves_closes_the_model_stream(stack) -> None:
    s = stack(token_interval=0.1, length=80)
    reply = await chat(s.url, stop=after_tokens(3))
    require_stream(reply)
    assert reply.left_at is not None, f"expected 3 token events, got {reply.names}"
    gen = s.generations[-1]
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
    assert reply.names[-1] == "done" and payload(reply, -1, "finish_reason")["finish_reason"] == "cancelled", (
        f"a cancelled stream should end with a done event whose finish_reason is 'cancelled'; got {reply.events[-1][:2]}"
    )
    gen = s.generations[-1]
    assert await gen.wait_closed_async(2.0) and not gen.finished, "after a cancel the model's stream should be closed"
    late = sum(1 for t in gen.token_times if t > cancelled["at"])
    assert late <= 2, (
        f"the model made {late} tokens after the cancel (at most 2 expected): close the upstream when stopping"
    )


@pytest.mark.exercise(CHAT)
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
    failed = await chat(s.url, {**BODY, "model": "fault-midstream"})
    abandoned = await chat(s.url, stop=after_tokens(1))
    for how, reply in [("finished", finished), ("failed mid-stream", failed), ("abandoned by its client", abandoned)]:
        require_stream(reply)
        assert await forgotten(s.url, generation_id(reply)), (
            f"a generation that {how} is still in the registry (cancelling its id did not give 404 within 2 s): "
            "remove the entry in a finally block, which runs however the stream ends"
        )


# --------------------------------------------------------------------------- the page


@pytest.mark.exercise(CHAT)
async def test_the_page_has_a_stop_button_and_streams_with_fetch_and_abort_controller(stack) -> None:
    s = stack()
    async with httpx.AsyncClient(timeout=5) as http:
        response = await http.get(f"{s.url}/")
    assert response.status_code == 200 and response.headers.get("content-type", "").startswith("text/html"), (
        f"GET / should answer 200 with an HTML page; got {response.status_code} {response.headers.get('content-type')!r}"
    )
    page = response.text
    assert re.search(r"<button[^>]*>\s*Stop\s*</button>", page, re.IGNORECASE), (
        "the page should have a <button> labelled Stop"
    )
    assert "fetch(" in page and "AbortController" in page, (
        "the page should POST with fetch() and stop with an AbortController (controller.abort() on Stop)"
    )
    assert "text/event-stream" in page, (
        "the page's fetch should send Accept: text/event-stream (jupyter-server-proxy buffers anything else)"
    )
