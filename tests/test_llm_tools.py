"""Specification of the embedded server's tool calls and structured output (``streamcourse.llm``).

Every test talks to a real uvicorn server over a real socket with the real openai
SDK — its plain streams and its streaming helpers (``chat.completions.stream``,
``responses.stream``) — or raw httpx, and compares what was streamed with what the
same request gets without streaming.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import openai
import pytest
from pydantic import BaseModel

from streamcourse import llm
from streamcourse.server import serve

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city.",
        "strict": True,
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "unit": {"type": "string", "enum": ["C", "F"]}},
            "required": ["city", "unit"],
            "additionalProperties": False,
        },
    },
}
CLOCK = {
    "type": "function",
    "function": {
        "name": "get_time",
        "description": "The time in a zone.",
        "parameters": {"type": "object", "properties": {"zone": {"type": "string"}, "offset": {"type": "integer"}}},
    },
}
TOOLS = [WEATHER, CLOCK]
MESSAGES = [{"role": "user", "content": "What is the weather in Paris, and the time in Tokyo?"}]


def flat(tool: dict[str, Any]) -> dict[str, Any]:
    """The Responses API spells a function tool without the nested ``function``."""
    return {"type": "function", **tool["function"]}


class Weather(BaseModel):
    city: str
    unit: str


@pytest.fixture(scope="module")
def app():
    return llm.make_app(ttft=0.01, token_interval=0.002)


@pytest.fixture(scope="module")
def url(app) -> Iterator[str]:
    srv = serve(app, name="llm-tools-test")
    yield srv.url
    srv.stop()


@pytest.fixture
async def ai(url) -> AsyncIterator[openai.AsyncOpenAI]:
    client = openai.AsyncOpenAI(base_url=f"{url}/v1", api_key="x", max_retries=0)
    yield client
    await client.close()


def calls_of(message: Any) -> list[tuple[str, str]]:
    return [(c.function.name, c.function.arguments) for c in message.tool_calls or []]


async def raw_chunks(url: str, **body: Any) -> list[dict[str, Any]]:
    body = {"model": "m", "messages": MESSAGES, "tools": TOOLS, "stream": True, **body}
    async with httpx.AsyncClient() as http:
        response = await http.post(f"{url}/v1/chat/completions", json=body)
    events = response.text.removesuffix("\n\n").split("\n\n")
    assert events[-1] == "data: [DONE]"
    return [json.loads(e.removeprefix("data: ")) for e in events[:-1]]


def accumulate(chunks: list[dict[str, Any]]) -> dict[int, dict[str, str]]:
    """Tool calls put back together by index, as a client must."""
    calls: dict[int, dict[str, str]] = {}
    for chunk in chunks:
        for choice in chunk["choices"]:
            for part in choice["delta"].get("tool_calls") or []:
                call = calls.setdefault(part["index"], {"id": "", "name": "", "arguments": ""})
                call["id"] = part.get("id") or call["id"]
                call["name"] += (part.get("function") or {}).get("name") or ""
                call["arguments"] += (part.get("function") or {}).get("arguments") or ""
    return calls


# --- Chat Completions -------------------------------------------------------------


async def test_streamed_tool_calls_equal_the_non_streamed_ones_through_the_sdk_helper(ai):
    whole = await ai.chat.completions.create(model="m", messages=MESSAGES, tools=TOOLS)
    async with ai.chat.completions.stream(model="m", messages=MESSAGES, tools=TOOLS) as stream:
        done = [e async for e in stream if e.type == "tool_calls.function.arguments.done"]
        final = await stream.get_final_completion()
    assert whole.choices[0].finish_reason == final.choices[0].finish_reason == "tool_calls"
    assert whole.choices[0].message.content is None
    assert calls_of(final.choices[0].message) == calls_of(whole.choices[0].message)
    assert [c[0] for c in calls_of(whole.choices[0].message)] == ["get_weather", "get_time"]
    assert [e.name for e in done] == ["get_weather", "get_time"]
    weather = final.choices[0].message.tool_calls[0].function
    assert weather.parsed_arguments == json.loads(weather.arguments), "a strict tool's arguments are parsed"


async def test_raw_stream_announces_each_call_once_then_sends_only_argument_fragments(url):
    chunks = await raw_chunks(url, stream_options={"include_usage": True})
    first = chunks[0]["choices"][0]["delta"]
    assert first["role"] == "assistant" and first["content"] is None
    assert first["tool_calls"][0] == {
        "index": 0,
        "id": first["tool_calls"][0]["id"],
        "type": "function",
        "function": {"name": "get_weather", "arguments": ""},
    }
    parts = [p for c in chunks[:-2] for p in c["choices"][0]["delta"].get("tool_calls", [])]
    announcements = [p for p in parts if "id" in p]
    assert [p["index"] for p in announcements] == [0, 1] and all(p["id"].startswith("call_") for p in announcements)
    fragments = [p for p in parts if "id" not in p]
    assert all(set(p) == {"index", "function"} and set(p["function"]) == {"arguments"} for p in fragments)
    finish, usage = chunks[-2], chunks[-1]
    assert finish["choices"][0] == {"index": 0, "delta": {}, "logprobs": None, "finish_reason": "tool_calls"}
    assert usage["choices"] == [] and usage["usage"]["completion_tokens"] == len(fragments)


async def test_arguments_are_valid_json_only_once_the_last_fragment_is_in(url):
    chunks = await raw_chunks(url, tools=[WEATHER])
    fragments = [p["function"]["arguments"] for c in chunks for p in c["choices"][0]["delta"].get("tool_calls", [])]
    text = "".join(fragments)
    prefixes = ["".join(fragments[:n]) for n in range(1, len(fragments))]
    assert len(fragments) > 5
    for prefix in prefixes:
        with pytest.raises(json.JSONDecodeError):
            json.loads(prefix)
    assert json.loads(text)["unit"] in ("C", "F")


async def test_fragments_split_inside_strings_escapes_and_next_to_multibyte_characters(url):
    seen_escape_cut = seen_multibyte_edge = False
    for n in range(8):  # eight prompts, eight argument texts
        messages = [{"role": "user", "content": f"weather {n}"}]
        chunks = await raw_chunks(url, messages=messages, tools=[WEATHER])
        fragments = [p["function"]["arguments"] for c in chunks for p in c["choices"][0]["delta"].get("tool_calls", [])]
        seen_escape_cut |= any(f.endswith("\\") for f in fragments)
        seen_multibyte_edge |= any(f and (not f[0].isascii() or not f[-1].isascii()) for f in fragments)
        assert json.loads("".join(fragments))
    assert seen_escape_cut, "some fragment should end between a backslash and the character it escapes"
    assert seen_multibyte_edge, "some fragment should begin or end at a non-ASCII character"


async def test_without_parallel_tool_calls_only_the_first_tool_is_called(ai):
    whole = await ai.chat.completions.create(model="m", messages=MESSAGES, tools=TOOLS, parallel_tool_calls=False)
    assert [name for name, _ in calls_of(whole.choices[0].message)] == ["get_weather"]


async def test_tool_choice_naming_a_function_calls_that_one(ai):
    choice = {"type": "function", "function": {"name": "get_time"}}
    whole = await ai.chat.completions.create(model="m", messages=MESSAGES, tools=TOOLS, tool_choice=choice)
    assert [name for name, _ in calls_of(whole.choices[0].message)] == ["get_time"]


async def test_tool_choice_none_answers_in_text(ai):
    whole = await ai.chat.completions.create(model="m", messages=MESSAGES, tools=TOOLS, tool_choice="none")
    assert whole.choices[0].finish_reason == "stop" and whole.choices[0].message.content
    assert whole.choices[0].message.tool_calls is None


async def test_tool_choice_naming_a_tool_not_offered_is_a_bad_request(ai):
    with pytest.raises(openai.BadRequestError, match="not among the tools offered"):
        await ai.chat.completions.create(
            model="m", messages=MESSAGES, tools=TOOLS, tool_choice={"type": "function", "function": {"name": "nope"}}
        )


async def test_interleaved_parallel_calls_come_apart_by_index(url, ai):
    chunks = await raw_chunks(url, interleave=True)
    order = [p["index"] for c in chunks for p in c["choices"][0]["delta"].get("tool_calls", []) if "id" not in p]
    assert order[:4] == [0, 1, 0, 1], "fragments of the two calls alternate"
    whole = await ai.chat.completions.create(model="m", messages=MESSAGES, tools=TOOLS)
    assert [(c["name"], c["arguments"]) for c in accumulate(chunks).values()] == calls_of(whole.choices[0].message)


async def test_after_the_tool_results_the_model_answers_in_text_quoting_them(ai):
    first = await ai.chat.completions.create(model="m", messages=MESSAGES, tools=TOOLS)
    message = first.choices[0].message
    results = [
        {"role": "tool", "tool_call_id": c.id, "content": f'{{"n": {i}}}'} for i, c in enumerate(message.tool_calls)
    ]
    conversation = [*MESSAGES, message.model_dump(exclude_none=True), *results]
    stream = await ai.chat.completions.create(model="m", messages=conversation, tools=TOOLS, stream=True)
    text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert text == 'From the tools: {"n": 0}; {"n": 1}.'


async def test_a_token_limit_cuts_the_arguments_with_finish_reason_length(ai):
    whole = await ai.chat.completions.create(model="m", messages=MESSAGES, tools=[WEATHER], max_tokens=3)
    assert whole.choices[0].finish_reason == "length"
    ((name, arguments),) = calls_of(whole.choices[0].message)
    with pytest.raises(json.JSONDecodeError):
        json.loads(arguments)


async def test_structured_output_streams_a_json_document_the_sdk_helper_parses(ai):
    whole = await ai.chat.completions.parse(model="m", messages=MESSAGES, response_format=Weather)
    async with ai.chat.completions.stream(model="m", messages=MESSAGES, response_format=Weather) as stream:
        partial = [e.parsed async for e in stream if e.type == "content.delta"]
        final = await stream.get_final_completion()
    assert final.choices[0].message.parsed == whole.choices[0].message.parsed
    assert isinstance(final.choices[0].message.parsed, Weather)
    assert len(partial) > 3 and partial[0] != partial[-1], "partial documents are parsed as they grow"


# --- Responses API ----------------------------------------------------------------


async def test_responses_streamed_function_calls_equal_the_non_streamed_ones(ai):
    tools = [flat(t) for t in TOOLS]
    whole = await ai.responses.create(model="m", input=MESSAGES[0]["content"], tools=tools)
    async with ai.responses.stream(model="m", input=MESSAGES[0]["content"], tools=tools) as stream:
        kinds = [e.type async for e in stream]
        final = await stream.get_final_response()
    assert [(o.type, o.name, o.arguments) for o in final.output] == [
        (o.type, o.name, o.arguments) for o in whole.output
    ]
    assert [o.name for o in whole.output] == ["get_weather", "get_time"]
    assert final.output[0].parsed_arguments == json.loads(final.output[0].arguments)
    per_item = [k for k in kinds if k.startswith("response.output_item") or "function_call_arguments" in k]
    assert per_item[0] == "response.output_item.added" and per_item[-1] == "response.output_item.done"
    assert kinds.count("response.function_call_arguments.done") == 2 and kinds[-1] == "response.completed"


async def test_responses_events_carry_item_id_output_index_and_the_whole_arguments_at_done(url):
    body = {"model": "m", "input": "hi", "tools": [flat(WEATHER)], "stream": True}
    async with httpx.AsyncClient() as http:
        response = await http.post(f"{url}/v1/responses", json=body)
    events = [json.loads(e.split("\ndata: ", 1)[1]) for e in response.text.strip().split("\n\n")]
    added = next(e for e in events if e["type"] == "response.output_item.added")
    assert added["item"]["type"] == "function_call" and added["item"]["arguments"] == ""
    deltas = [e for e in events if e["type"] == "response.function_call_arguments.delta"]
    done = next(e for e in events if e["type"] == "response.function_call_arguments.done")
    assert {d["item_id"] for d in deltas} == {added["item"]["id"]} and {d["output_index"] for d in deltas} == {0}
    assert done["arguments"] == "".join(d["delta"] for d in deltas)
    assert [e["sequence_number"] for e in events] == list(range(len(events)))


async def test_responses_structured_output_is_parsed_by_the_sdk_helper(ai):
    whole = await ai.responses.parse(model="m", input="a city", text_format=Weather)
    async with ai.responses.stream(model="m", input="a city", text_format=Weather) as stream:
        final = await stream.get_final_response()
    assert final.output_parsed == whole.output_parsed and isinstance(final.output_parsed, Weather)
    assert final.text.format.type == "json_schema"


async def test_responses_continue_after_function_call_output(ai):
    first = await ai.responses.create(model="m", input="hi", tools=[flat(WEATHER)])
    call = first.output[0]
    follow = [
        {"role": "user", "content": "hi"},
        {"type": "function_call", "call_id": call.call_id, "name": call.name, "arguments": call.arguments},
        {"type": "function_call_output", "call_id": call.call_id, "output": "sunny"},
    ]
    again = await ai.responses.create(model="m", input=follow, tools=[flat(WEATHER)])
    assert again.output_text == "From the tools: sunny."


# --- faults in the middle of a tool call ----------------------------------------------


async def test_429_before_a_tool_call_stream_raises_rate_limit_error(ai):
    with pytest.raises(openai.RateLimitError):
        await ai.chat.completions.create(model="fault-429", messages=MESSAGES, tools=TOOLS, stream=True)


async def test_midstream_error_in_a_tool_call_raises_api_error_after_some_fragments(ai):
    stream = await ai.chat.completions.create(
        model="m", messages=MESSAGES, tools=TOOLS, stream=True, extra_body={"fault": "midstream", "fault_after": 4}
    )
    got = []
    with pytest.raises(openai.APIError, match="mid-stream"):
        async for chunk in stream:
            got.append(chunk)
    assert len(got) == 5, "the role chunk with the first fragment, then three more fragments"


async def test_midstream_error_in_a_responses_function_call_ends_with_response_failed(ai):
    stream = await ai.responses.create(
        model="m", input="hi", tools=[flat(WEATHER)], stream=True, extra_body={"fault": "midstream"}
    )
    kinds = [e.type async for e in stream]
    assert "response.function_call_arguments.delta" in kinds and kinds[-1] == "response.failed"


async def test_leaving_in_the_middle_of_a_tool_call_stops_the_model(ai, app):
    stream = await ai.chat.completions.create(
        model="m", messages=MESSAGES, tools=TOOLS, stream=True, extra_body={"token_interval": 0.05}
    )
    first = await anext(aiter(stream))
    await stream.close()
    gen = llm.find(app, first.id)
    assert await gen.wait_closed_async(2.0), "the generation should close when the client leaves"
    assert gen.calls and not gen.finished and gen.client_gone_at is not None
    assert len(gen.text) < sum(len(c.arguments) for c in gen.calls), "it stopped in the middle of the arguments"
    assert gen.tokens_after_disconnect == 0


async def test_stall_in_a_tool_call_is_seen_by_a_client_timeout(ai, app):
    stream = await ai.chat.completions.create(
        model="m", messages=MESSAGES, tools=TOOLS, stream=True, extra_body={"fault": "stall"}
    )
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.3):
            async for chunk in stream:  # noqa: B007 - the last chunk read names the generation
                pass
    await stream.close()
    gen = llm.find(app, chunk.id)
    assert await gen.wait_closed_async(2.0) and gen.tokens_sent == 3 and gen.tokens_after_disconnect == 0
