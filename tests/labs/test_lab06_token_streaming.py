"""Checks for lab 06 — ``relay_tokens``: a FastAPI relay from the openai SDK to SSE.

The upstream is the course's embedded OpenAI-compatible server; the learner's
app is served on a real socket and read with httpx-sse, as a browser would.
The model name picks the upstream's behaviour: ``fault-429`` refuses before the
stream, ``fault-midstream`` fails after three tokens.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import httpx
import openai
import pytest
from httpx_sse import aconnect_sse

from streamcourse import llm
from streamcourse.server import Server, serve

RELAY = "lab06.relay_tokens"


@pytest.fixture(scope="module")
def upstream() -> Iterator[tuple[Server, object]]:
    app = llm.make_app(ttft=0.02, token_interval=0.03, length=20)
    srv = serve(app, name="lab06-check-llm")
    yield srv, app
    srv.stop()


@pytest.fixture
def relay(submission, upstream) -> Iterator[tuple[str, object]]:
    srv, app = upstream
    client = openai.AsyncOpenAI(base_url=f"{srv.url}/v1", api_key="not-needed", max_retries=0)
    learner = submission.relay_tokens(client)
    relay_srv = serve(learner, name="lab06-check-relay")
    yield relay_srv.url, app
    relay_srv.stop()


@dataclass
class Reply:
    status: int = 0
    content_type: str = ""
    events: list[tuple[str, str, float]] = field(default_factory=list)  # (event, data, arrival time)
    broken: str = ""  # how the stream broke, if it did
    body: str = ""


async def post_chat(
    url: str, model: str = llm.MODEL, prompt: str = "Tell me about streams", timeout: float = 10.0
) -> Reply:
    reply = Reply()

    async def read() -> None:
        async with httpx.AsyncClient(timeout=5) as http:
            async with aconnect_sse(http, "POST", f"{url}/chat", json={"prompt": prompt, "model": model}) as source:
                reply.status = source.response.status_code
                reply.content_type = source.response.headers.get("content-type", "")
                if not reply.content_type.startswith("text/event-stream"):
                    reply.body = (await source.response.aread()).decode(errors="replace")
                    return
                async for event in source.aiter_sse():
                    reply.events.append((event.event, event.data, time.monotonic()))

    try:
        await asyncio.wait_for(read(), timeout)
    except TimeoutError:
        pytest.fail(f"the relay's response did not end within {timeout:g} s", pytrace=False)
    except httpx.HTTPError as exc:  # e.g. RemoteProtocolError: the server dropped the connection mid-stream
        reply.broken = f"{type(exc).__name__}: {exc}"
    return reply


def require_stream(reply: Reply) -> None:
    assert reply.status == 200 and reply.content_type.startswith("text/event-stream"), (
        f"expected 200 with Content-Type text/event-stream, got {reply.status} {reply.content_type!r} {reply.body[:200]!r}"
    )


def texts(reply: Reply) -> list[str]:
    out = []
    for name, data, _ in reply.events:
        if name == "token":
            try:
                out.append(json.loads(data)["text"])
            except (ValueError, KeyError, TypeError):
                pytest.fail(f'a token event\'s data must be JSON like {{"text": "..."}}; got {data!r}', pytrace=False)
    return out


@pytest.mark.exercise(RELAY)
async def test_tokens_arrive_as_token_events_that_join_to_the_reply(relay) -> None:
    url, app = relay
    reply = await post_chat(url)
    require_stream(reply)
    names = {name for name, _, _ in reply.events}
    assert "token" in names, f"expected events named 'token' (event: token); got event names {sorted(names)}"
    gen = app.state.generations[-1]
    assert "".join(texts(reply)) == gen.text, (
        f"the token events' texts should join to the model's reply {gen.text!r}; got {''.join(texts(reply))!r}"
    )


@pytest.mark.exercise(RELAY)
async def test_the_stream_ends_with_one_done_event_carrying_usage(relay) -> None:
    url, app = relay
    reply = await post_chat(url)
    require_stream(reply)
    assert not reply.broken, (
        f"the stream broke ({reply.broken}) instead of ending with a done event — does your code index "
        "chunk.choices[0]? The usage chunk has an EMPTY choices list"
    )
    names = [name for name, _, _ in reply.events]
    assert names.count("done") == 1 and names[-1] == "done", f"expected exactly one done event, last; got {names[-3:]}"
    try:
        usage = json.loads(reply.events[-1][1])["usage"]
    except (ValueError, KeyError, TypeError):
        pytest.fail(
            f'the done event\'s data must be JSON like {{"usage": {{...}}}}; got {reply.events[-1][1]!r}', pytrace=False
        )
    gen = app.state.generations[-1]
    assert isinstance(usage, dict) and usage.get("completion_tokens") == gen.tokens_sent, (
        f"done should carry the model's usage (completion_tokens={gen.tokens_sent}); got {usage!r} — "
        'ask for it with stream_options={"include_usage": True} and keep it from the last chunk'
    )
    assert usage.get("prompt_tokens") and usage.get("total_tokens") == usage["prompt_tokens"] + gen.tokens_sent, (
        f"usage should have prompt_tokens and total_tokens as the model sent them; got {usage!r}"
    )


@pytest.mark.exercise(RELAY)
async def test_each_token_is_relayed_as_soon_as_it_arrives(relay) -> None:
    url, app = relay
    reply = await post_chat(url)
    require_stream(reply)
    gen = app.state.generations[-1]
    tokens = [at for name, _, at in reply.events if name == "token"]
    assert tokens, "expected token events"
    assert tokens[0] < gen.token_times[-1], (
        "the first token event arrived only after the model had produced its LAST token: "
        "yield each token as it arrives instead of collecting the reply first"
    )


@pytest.mark.exercise(RELAY)
async def test_a_rate_limited_model_gives_an_http_error_before_any_stream(relay) -> None:
    url, _ = relay
    reply = await post_chat(url, model="fault-429")
    assert reply.status in (429, 502, 503), (
        f"when the model answers 429 before streaming, the relay should answer with an HTTP error (429 or 502); "
        f"got {reply.status} {reply.content_type!r} — once a 200 stream has started its status can't change, so "
        "open the upstream stream before the response starts (in a dependency)"
    )
    assert not reply.content_type.startswith("text/event-stream"), "an HTTP error has a JSON body, not an event stream"


@pytest.mark.exercise(RELAY)
async def test_a_failure_mid_stream_becomes_an_error_event_and_a_clean_end(relay) -> None:
    url, _ = relay
    reply = await post_chat(url, model="fault-midstream")
    require_stream(reply)
    assert not reply.broken, (
        f"the connection broke ({reply.broken}): catch openai.APIError while iterating, "
        "send an error event and end the stream normally"
    )
    names = [name for name, _, _ in reply.events]
    assert names[:3] == ["token"] * 3, (
        f"the model sent 3 tokens before failing: expected 3 token events first; got {names}"
    )
    assert names[-1] == "error" and "done" not in names, (
        f"expected the stream to end with one error event (no done); got {names}"
    )
    try:
        message = json.loads(reply.events[-1][1])["message"]
    except (ValueError, KeyError, TypeError):
        pytest.fail(
            f'the error event\'s data must be JSON like {{"message": "..."}}; got {reply.events[-1][1]!r}',
            pytrace=False,
        )
    assert isinstance(message, str) and message, "the error event's message should say what went wrong"
