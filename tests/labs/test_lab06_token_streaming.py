"""Checks for lab 06 — ``relay_tokens``: a FastAPI relay from the openai SDK to SSE.

The upstream is the course's embedded OpenAI-compatible server; the learner's
app is served on a real socket and read with httpx-sse, as a browser would.
The model name picks the upstream's behaviour: ``fault-429`` refuses before the
stream, ``fault-midstream`` fails after three tokens.
"""

from __future__ import annotations

import json

import pytest

from streamcourse import llm
from streamcourse.checkkit import (
    Model,
    Reply,
    read_events,
    require_http_error_before_stream,
    require_stream,
    start_model,
    unique_prompt,
)
from streamcourse.server import serve

RELAY = "lab06.relay_tokens"


@pytest.fixture
def relay(submission, servers) -> tuple[str, Model]:
    """A fresh model, and the learner's relay in front of it."""
    model = start_model(servers, "lab06-check-llm", ttft=0.02, token_interval=0.03, length=20)
    learner = serve(submission.relay_tokens(model.client()), name="lab06-check-relay")
    servers.append(learner)
    return learner.url, model


async def post_chat(
    url: str, model: str = llm.MODEL, prompt: str = "Tell me about streams", timeout: float = 10.0
) -> tuple[Reply, str]:
    """POST /chat with a prompt no other request uses; returns the reply and that prompt."""
    prompt = unique_prompt(prompt)
    return await read_events(f"{url}/chat", {"prompt": prompt, "model": model}, timeout=timeout, read_timeout=5), prompt


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
    url, model = relay
    reply, prompt = await post_chat(url)
    require_stream(reply)
    names = {name for name, _, _ in reply.events}
    assert "token" in names, f"expected events named 'token' (event: token); got event names {sorted(names)}"
    gen = model.generation(prompt)
    assert "".join(texts(reply)) == gen.text, (
        f"the token events' texts should join to the model's reply {gen.text!r}; got {''.join(texts(reply))!r}"
    )


@pytest.mark.exercise(RELAY)
async def test_the_stream_ends_with_one_done_event_carrying_usage(relay) -> None:
    url, model = relay
    reply, prompt = await post_chat(url)
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
    gen = model.generation(prompt)
    assert isinstance(usage, dict) and usage.get("completion_tokens") == gen.tokens_sent, (
        f"done should carry the model's usage (completion_tokens={gen.tokens_sent}); got {usage!r} — "
        'ask for it with stream_options={"include_usage": True} and keep it from the last chunk'
    )
    assert usage.get("prompt_tokens") and usage.get("total_tokens") == usage["prompt_tokens"] + gen.tokens_sent, (
        f"usage should have prompt_tokens and total_tokens as the model sent them; got {usage!r}"
    )


@pytest.mark.exercise(RELAY)
async def test_each_token_is_relayed_as_soon_as_it_arrives(relay) -> None:
    url, model = relay
    reply, prompt = await post_chat(url)
    require_stream(reply)
    gen = model.generation(prompt)
    tokens = [at for name, _, at in reply.events if name == "token"]
    assert tokens, "expected token events"
    assert tokens[0] < gen.token_times[-1], (
        "the first token event arrived only after the model had produced its LAST token: "
        "yield each token as it arrives instead of collecting the reply first"
    )


@pytest.mark.exercise(RELAY)
async def test_a_rate_limited_model_gives_an_http_error_before_any_stream(relay) -> None:
    url, _ = relay
    reply, _ = await post_chat(url, model="fault-429")
    require_http_error_before_stream(reply, "the relay")


@pytest.mark.exercise(RELAY)
async def test_a_failure_mid_stream_becomes_an_error_event_and_a_clean_end(relay) -> None:
    url, _ = relay
    reply, prompt = await post_chat(url, model="fault-midstream")
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
