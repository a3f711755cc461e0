"""Specification of the embedded OpenAI-compatible server (``streamcourse.llm``).

Every test talks to a real uvicorn server over a real socket, with the real openai
SDK or raw httpx: what passes here is what a lesson or a lab check will see.
"""

from __future__ import annotations

import asyncio
import json
import time
import types
from collections.abc import AsyncIterator, Iterator

import httpx
import openai
import pytest

from streamcourse import llm
from streamcourse.llm import chat as llm_chat
from streamcourse.llm import record as llm_record
from streamcourse.llm import responses as llm_responses
from streamcourse.server import serve

MESSAGES = [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "Tell me about streams"}]
PROMPT_WORDS = 3 + 4  # words in all messages: what prompt_tokens counts


@pytest.fixture(scope="module")
def app():
    """One fast server for the module; tests that need other pacing ask per request."""
    return llm.make_app(ttft=0.01, token_interval=0.002, length=30)


@pytest.fixture(scope="module")
def url(app) -> Iterator[str]:
    srv = serve(app, name="llm-test")
    yield srv.url
    srv.stop()


@pytest.fixture
async def ai(url) -> AsyncIterator[openai.AsyncOpenAI]:
    client = openai.AsyncOpenAI(base_url=f"{url}/v1", api_key="x", max_retries=0)
    yield client
    await client.close()


async def chat_stream(ai: openai.AsyncOpenAI, **kwargs):
    kwargs.setdefault("model", "test-model")
    kwargs.setdefault("messages", MESSAGES)
    return await ai.chat.completions.create(stream=True, **kwargs)


def sse_data(raw: bytes) -> list[str]:
    """The ``data:`` payloads of an event stream whose events are single data lines."""
    text = raw.decode("utf-8")
    assert text.endswith("\n\n")
    events = text[:-2].split("\n\n")
    assert all(e.startswith("data: ") and "\n" not in e for e in events), events
    return [e[len("data: ") :] for e in events]


# --- Chat Completions: text and wire format ---------------------------------------


async def test_streamed_chat_text_equals_non_streamed_text(ai):
    full = await ai.chat.completions.create(model="m", messages=MESSAGES)
    streamed = []
    async with await chat_stream(ai) as stream:
        async for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                streamed.append(chunk.choices[0].delta.content)
    assert "".join(streamed) == full.choices[0].message.content
    assert full.choices[0].finish_reason == "stop"
    assert full.usage.completion_tokens == len(streamed) == 30


async def test_same_prompt_gives_same_reply_and_every_reply_has_non_ascii(ai):
    one = await ai.chat.completions.create(model="m", messages=MESSAGES)
    two = await ai.chat.completions.create(model="m", messages=MESSAGES)
    other = await ai.chat.completions.create(model="m", messages=[{"role": "user", "content": "something else"}])
    assert one.choices[0].message.content == two.choices[0].message.content
    assert one.choices[0].message.content != other.choices[0].message.content
    assert not one.choices[0].message.content.isascii()


async def test_raw_chat_stream_has_role_chunk_finish_chunk_usage_chunk_and_done(url):
    body = {"model": "m", "messages": MESSAGES, "stream": True, "stream_options": {"include_usage": True}}
    async with httpx.AsyncClient() as http:
        response = await http.post(f"{url}/v1/chat/completions", json=body)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.content.endswith(b"data: [DONE]\n\n")
    payloads = sse_data(response.content)
    assert payloads[-1] == "[DONE]"
    chunks = [json.loads(p) for p in payloads[:-1]]

    first, *content, finish, usage = chunks
    assert first["choices"][0]["delta"] == {"role": "assistant", "content": "", "refusal": None}
    assert all(c["object"] == "chat.completion.chunk" and c["id"] == first["id"] for c in chunks)
    assert all(set(c["choices"][0]["delta"]) == {"content"} for c in content)
    assert finish["choices"][0]["delta"] == {} and finish["choices"][0]["finish_reason"] == "stop"
    assert all(c["usage"] is None for c in chunks[:-1])
    assert usage["choices"] == []
    assert usage["usage"]["prompt_tokens"] == PROMPT_WORDS
    assert usage["usage"]["completion_tokens"] == len(content)
    assert usage["usage"]["total_tokens"] == PROMPT_WORDS + len(content)
    # Non-ASCII travels as raw UTF-8 (not \u escapes), so it can be split across chunks.
    text = "".join(c["choices"][0]["delta"]["content"] for c in content)
    assert any(ch.encode() in response.content for ch in text if not ch.isascii())


async def test_without_include_usage_no_usage_chunk_is_sent(url):
    body = {"model": "m", "messages": MESSAGES, "stream": True}
    async with httpx.AsyncClient() as http:
        response = await http.post(f"{url}/v1/chat/completions", json=body)
    chunks = [json.loads(p) for p in sse_data(response.content)[:-1]]
    assert all(c["choices"] for c in chunks)
    assert all("usage" not in c for c in chunks)


async def test_usage_chunk_has_empty_choices_so_indexing_it_raises_index_error(ai):
    """Known error 6: `chunk.choices[0]` on every chunk breaks on the last one."""
    async with await chat_stream(ai, stream_options={"include_usage": True}) as stream:
        chunks = [chunk async for chunk in stream]
    last = chunks[-1]
    assert last.choices == []
    with pytest.raises(IndexError):
        last.choices[0]
    assert last.usage.prompt_tokens == PROMPT_WORDS
    assert last.usage.completion_tokens == sum(1 for c in chunks[1:-1] if c.choices[0].delta.content)
    assert all(c.usage is None for c in chunks[:-1])


@pytest.mark.parametrize("limit", ["max_tokens", "max_completion_tokens"])
async def test_token_limit_stops_early_with_finish_reason_length(ai, limit):
    async with await chat_stream(ai, stream_options={"include_usage": True}, **{limit: 4}) as stream:
        chunks = [chunk async for chunk in stream]
    contents = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    assert len(contents) == 4
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "length"
    assert chunks[-1].usage.completion_tokens == 4


async def test_fixed_text_is_split_into_words_with_their_leading_spaces():
    with serve(llm.make_app(ttft=0, token_interval=0, text="Hello → café world"), name="llm-test-text") as srv:
        async with openai.AsyncOpenAI(base_url=f"{srv.url}/v1", api_key="x", max_retries=0) as ai:
            async with await chat_stream(ai) as stream:
                tokens = [c.choices[0].delta.content async for c in stream if c.choices and c.choices[0].delta.content]
    assert tokens == ["Hello", " →", " café", " world"]


# --- Responses API ---------------------------------------------------------------------


async def test_responses_stream_deltas_join_to_final_output_text_with_usage(ai):
    async with ai.responses.stream(model="m", input="Tell me about streams") as stream:
        deltas = [event.delta async for event in stream if event.type == "response.output_text.delta"]
        final = await stream.get_final_response()
    assert len(deltas) == 30
    assert "".join(deltas) == final.output_text
    assert final.status == "completed"
    assert final.usage.input_tokens == 4
    assert final.usage.output_tokens == 30
    assert final.usage.total_tokens == 34


async def test_responses_create_stream_yields_the_documented_events_in_order(ai):
    stream = await ai.responses.create(model="m", input="hi there", stream=True)
    events = [event async for event in stream]
    types = [e.type for e in events]
    assert types[:4] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
    ]
    assert set(types[4:-4]) == {"response.output_text.delta"}
    assert types[-4:] == [
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert events[-1].response.usage.output_tokens == len(types) - 8
    non_streamed = await ai.responses.create(model="m", input="hi there")
    assert events[-4].text == non_streamed.output_text


async def test_responses_max_output_tokens_ends_incomplete(ai):
    stream = await ai.responses.create(model="m", input="hi", stream=True, max_output_tokens=3)
    events = [event async for event in stream]
    assert events[-1].type == "response.incomplete"
    assert events[-1].response.incomplete_details.reason == "max_output_tokens"
    assert sum(e.type == "response.output_text.delta" for e in events) == 3


# --- Faults ---------------------------------------------------------------------------


@pytest.mark.parametrize("how", [{"extra_body": {"fault": "429"}}, {"model": "fault-429"}])
async def test_429_fault_raises_rate_limit_error_before_any_chunk(ai, app, how):
    with pytest.raises(openai.RateLimitError) as caught:
        await chat_stream(ai, **how)
    error = caught.value
    assert error.status_code == 429
    assert error.response.headers["retry-after"] == "1"
    assert error.body["type"] == "requests" and error.body["code"] == "rate_limit_exceeded"
    assert app.state.generations[-1].tokens_sent == 0


async def test_429_fault_on_responses_api_raises_rate_limit_error(ai):
    with pytest.raises(openai.RateLimitError):
        await ai.responses.create(model="fault-429", input="hi", stream=True)


async def test_midstream_fault_raises_api_error_after_some_tokens(ai):
    tokens = []
    with pytest.raises(openai.APIError) as caught:
        async with await chat_stream(ai, extra_body={"fault": "midstream"}) as stream:
            async for chunk in stream:
                if chunk.choices[0].delta.content:
                    tokens.append(chunk.choices[0].delta.content)
    assert len(tokens) == 3
    assert not isinstance(caught.value, openai.APIStatusError)  # the status was already 200
    assert caught.value.body["type"] == "server_error"


async def test_midstream_fault_on_responses_api_ends_with_response_failed(ai):
    stream = await ai.responses.create(model="fault-midstream", input="hi", stream=True)
    events = [event async for event in stream]
    assert sum(e.type == "response.output_text.delta" for e in events) == 3
    assert events[-1].type == "response.failed"
    assert events[-1].response.error.code == "server_error"


@pytest.mark.parametrize("extra", [{"fault": "gremlins"}, {"ttft": "soon"}])
async def test_unknown_fault_or_bad_option_is_a_bad_request(ai, extra):
    with pytest.raises(openai.BadRequestError):
        await chat_stream(ai, extra_body=extra)


# --- The record that proves cancellation ---------------------------------------------


async def test_stall_fault_client_timeout_is_seen_and_nothing_generated_after(ai, app):
    async with await chat_stream(ai, extra_body={"fault": "stall"}) as stream:
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.3):
                async for chunk in stream:  # noqa: B007 - the last chunk read names the generation
                    pass
        gen = llm.find(app, chunk.id)
        left = time.monotonic()
    assert await gen.wait_closed_async(0.2)
    assert gen.client_gone_at is not None and gen.client_gone_at - left < 0.2
    assert gen.tokens_sent == 3
    assert gen.tokens_after_disconnect == 0
    assert not gen.finished


@pytest.mark.parametrize("api", ["chat", "responses"])
async def test_client_closing_early_closes_the_generation_within_200ms(ai, app, api):
    slow = {"length": 500, "token_interval": 0.01}
    if api == "chat":
        stream = await chat_stream(ai, extra_body=slow)
        is_token = lambda item: bool(item.choices[0].delta.content)  # noqa: E731
    else:
        stream = await ai.responses.create(model="m", input="hi", stream=True, extra_body=slow)
        is_token = lambda item: item.type == "response.output_text.delta"  # noqa: E731
    seen = 0
    async for item in stream:
        seen += is_token(item)
        if seen == 3:
            break
    gen = app.state.generations[-1]
    left = time.monotonic()
    await stream.close()
    assert await gen.wait_closed_async(0.2)
    assert gen.closed_at - left < 0.2
    assert gen.client_gone_at is not None
    assert gen.tokens_after_disconnect <= 2
    assert not gen.finished and gen.tokens_sent < 10


async def test_client_that_stops_reading_without_closing_is_not_seen_as_gone(ai, app):
    """The record cannot be fooled: an abandoned but open connection keeps the generation running."""
    stream = await chat_stream(ai, extra_body={"length": 500, "token_interval": 0.005})
    async for _ in stream:
        break
    gen = app.state.generations[-1]
    try:
        assert not await gen.wait_closed_async(0.2)
        assert gen.client_gone_at is None
        assert gen.tokens_sent > 10
    finally:
        await stream.close()
    assert await gen.wait_closed_async(0.2)


async def test_finished_generation_is_recorded_as_finished_not_gone(ai, app):
    async with await chat_stream(ai) as stream:
        chunks = [chunk async for chunk in stream]
    gen = llm.find(app, chunks[0].id)
    assert gen.wait_closed(1.0)
    assert gen.finished and gen.client_gone_at is None
    assert gen.prompt == "Tell me about streams"
    assert gen.tokens_sent == 30 and len(gen.token_times) == 30


# --- Pacing ---------------------------------------------------------------------------


async def test_time_to_first_token_and_token_interval_follow_the_request(ai):
    start = time.monotonic()
    times = []
    async with await chat_stream(ai, extra_body={"ttft": 0.3, "token_interval": 0.05, "length": 5}) as stream:
        async for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                times.append(time.monotonic())
    assert 0.25 <= times[0] - start < 0.6
    gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
    assert 0.035 <= sum(gaps) / len(gaps) < 0.12


async def test_role_chunk_arrives_with_the_first_token_not_before_it(ai):
    start = time.monotonic()
    async with await chat_stream(ai, extra_body={"ttft": 0.2, "length": 2}) as stream:
        first = await stream.__anext__()
        arrived = time.monotonic() - start
    assert first.choices[0].delta.role == "assistant"
    assert arrived >= 0.15


# --- Small things ---------------------------------------------------------------------


async def test_models_lists_the_default_model_and_the_fault_models(ai):
    names = [m.id async for m in ai.models.list()]
    assert llm.MODEL in names and "fault-429" in names


def test_client_uses_the_embedded_server_without_a_key(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    assert str(llm.client("http://127.0.0.1:9").base_url) == "http://127.0.0.1:9/v1/"
    assert llm.describe("http://127.0.0.1:9") == "embedded server at http://127.0.0.1:9/v1"
    handle = types.SimpleNamespace(url="http://127.0.0.1:9")  # what serve() returns has .url
    assert str(llm.client(handle).base_url) == "http://127.0.0.1:9/v1/"
    with pytest.raises(ValueError):
        llm.client(None)


def test_client_uses_the_real_service_when_a_key_is_set_unless_told_not_to(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    assert llm.describe("http://127.0.0.1:9") == "OpenAI at https://api.openai.com/v1"
    assert str(llm.client("http://127.0.0.1:9").base_url).startswith("https://api.openai.com/v1")
    assert llm.describe("http://127.0.0.1:9", real=False).startswith("embedded server")
    monkeypatch.setenv("OPENAI_BASE_URL", "http://localhost:11434/v1")
    assert str(llm.client().base_url) == "http://localhost:11434/v1/"
    assert "localhost:11434" in llm.describe()


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_the_command_line_server_answers_the_real_service_code_path(monkeypatch):
    """`python -m streamcourse llm --port P` serves /v1; with a key and OPENAI_BASE_URL set,
    llm.client() takes the real-service path (the SDK reads both) and streams from it."""
    import subprocess
    import sys
    import time

    import httpx

    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamcourse", "llm", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/v1/models", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, "the llm command did not start serving"
            time.sleep(0.1)
        monkeypatch.setenv("OPENAI_API_KEY", "sk-not-a-real-key")
        monkeypatch.setenv("OPENAI_BASE_URL", f"http://127.0.0.1:{port}/v1")
        assert llm.describe() == f"an OpenAI-compatible service at http://127.0.0.1:{port}/v1"
        ai = llm.client(max_retries=0)
        stream = await ai.chat.completions.create(
            model=llm.MODEL,
            messages=[{"role": "user", "content": "hello"}],
            stream=True,
            stream_options={"include_usage": True},
        )
        text = "".join([chunk.choices[0].delta.content or "" async for chunk in stream if chunk.choices])
        assert text.strip(), "the streamed reply is not empty"
        await ai.close()
    finally:
        proc.terminate()
        proc.wait(10)


# --- the wire formats alone, and their timestamps -----------------------------------


def a_plan(words: list[str]) -> llm_record.Plan:
    return llm_record.Plan(
        [llm_record.Piece(w) for w in words], "stop", ttft=0, token_interval=0, fault=None, fault_after=0
    )


async def test_chat_chunks_are_a_generator_that_runs_without_a_server():
    gen = llm.Generation("chatcmpl-x", "chat.completions", "m", "hi", True)
    plan = a_plan(["Hello", " café"])
    out = [e async for e in llm_chat.chunks(gen, plan, llm_chat.base(gen), 2, include_usage=True)]
    chunks = [json.loads(e.removeprefix("data: ")) for e in out[:-1]]
    assert out[-1] == "data: [DONE]\n\n"
    assert [c["choices"][0]["delta"] for c in chunks[:3]] == [
        {"role": "assistant", "content": "", "refusal": None},
        {"content": "Hello"},
        {"content": " café"},
    ]
    assert chunks[3]["choices"][0]["finish_reason"] == "stop" and chunks[4]["choices"] == []
    assert gen.tokens == ["Hello", " café"] and gen.finished


async def test_responses_events_are_a_generator_that_runs_without_a_server():
    gen = llm.Generation("resp_x", "responses", "m", "hi", True)
    reply = llm_responses.Reply(gen, a_plan(["Hello", " café"]), {"input": "hi"}, 1)
    out = [e async for e in llm_responses.events(reply)]
    types_ = [e.split("\n", 1)[0].removeprefix("event: ") for e in out]
    assert types_ == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]


async def test_timestamps_are_integer_seconds_as_the_real_api_sends_them(url):
    body = {"model": "m", "messages": MESSAGES, "stream": True}
    async with httpx.AsyncClient() as http:
        streamed = await http.post(f"{url}/v1/chat/completions", json=body)
        whole = await http.post(f"{url}/v1/chat/completions", json={**body, "stream": False})
        response = await http.post(f"{url}/v1/responses", json={"model": "m", "input": "hi"})
    created = [json.loads(p)["created"] for p in sse_data(streamed.content)[:-1]] + [whole.json()["created"]]
    assert all(type(c) is int for c in created), created
    stamps = response.json()["created_at"], response.json()["completed_at"]
    assert all(type(s) is int for s in stamps), stamps
