"""Checks for lab 10 — tool calls, streamed.

``accumulate_tool_calls`` gets chunks the check read itself from the embedded model
(raw JSON, as on the wire), then the same calls cut at EVERY split point of their
arguments and in random fragmentations and interleavings, and must always give the
calls the model made — the record of the model (``Generation.calls``) is the truth.

``relay_tool_calls`` is served on a real socket and read with httpx-sse. The model
the check starts records every generation, so "the relay stopped the model when the
client left in the middle of a tool call" is measured at the model, from the moment
the check hung up.
"""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streamcourse import llm
from streamcourse.checking import within
from streamcourse.checkkit import Model, after_events, read_events, require_stream, start_model, unique_prompt
from streamcourse.server import serve

ACCUMULATE = "lab10.accumulate_tool_calls"
RELAY = "lab10.relay_tool_calls"

PROPERTY = settings(
    max_examples=60, deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck)
)

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "unit": {"type": "string", "enum": ["C", "F"]}},
        },
    },
}
CLOCK = {
    "type": "function",
    "function": {
        "name": "get_time",
        "parameters": {"type": "object", "properties": {"zone": {"type": "string"}, "offset": {"type": "integer"}}},
    },
}


# --------------------------------------------------------------------------- accumulate_tool_calls


@pytest.fixture
def model(servers) -> Model:
    return start_model(servers, "lab10-check-llm", ttft=0.0, token_interval=0.0)


def wire_chunks(model: Model, tools: list[dict[str, Any]], **body: Any) -> tuple[list[dict[str, Any]], llm.Generation]:
    """One streamed request read raw by the check: every chunk as the JSON on the wire, and its generation."""
    prompt = unique_prompt("What is the weather in Paris, and the time in Tokyo?")
    request = {"model": "m", "messages": [{"role": "user", "content": prompt}], "tools": tools, "stream": True,
               "stream_options": {"include_usage": True}, **body}  # fmt: skip
    response = httpx.post(f"{model.url}/v1/chat/completions", json=request, timeout=10)
    events = response.text.removesuffix("\n\n").split("\n\n")
    assert events[-1] == "data: [DONE]", "the check's model stream did not end (a fault in the check, not your code)"
    return [json.loads(e.removeprefix("data: ")) for e in events[:-1]], model.generation(prompt)


def expected(gen: llm.Generation) -> list[dict[str, str]]:
    return [{"id": c.call_id, "name": c.name, "arguments": c.arguments} for c in gen.calls]


def accumulate(submission, chunks: list[dict[str, Any]]) -> dict[str, Any]:
    result = within(5, submission.accumulate_tool_calls, iter(chunks), what="accumulate_tool_calls")
    assert isinstance(result, dict) and {"calls", "finish_reason", "usage"} <= set(result), (
        f'accumulate_tool_calls should return {{"calls": [...], "finish_reason": ..., "usage": ...}}; got {result!r}'
    )
    calls = result["calls"]
    assert isinstance(calls, list) and all(isinstance(c, dict) for c in calls), (
        f"calls should be a list of dicts, one per tool call in index order; got {calls!r}"
    )
    for call in calls:
        assert all(type(call.get(k)) is str for k in ("id", "name", "arguments")), (
            f'each call is {{"id": str, "name": str, "arguments": str (the JSON text)}}; got {call!r}'
        )
    return result


def only(call: dict[str, Any]) -> dict[str, str]:
    return {k: call[k] for k in ("id", "name", "arguments")}


def recut(
    head: dict[str, Any], pieces: list[tuple[int, str]], announced: list[dict[str, Any]], usage: dict[str, Any]
) -> list[dict[str, Any]]:
    """A stream of the same calls cut into ``pieces`` (index, fragment): each call announced before its first piece."""

    def chunk(delta: dict[str, Any] | None, finish: str | None = None, **extra: Any) -> dict[str, Any]:
        choices = [] if delta is None else [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]
        return {**head, "choices": choices, "usage": None, **extra}

    out = [chunk({"role": "assistant", "content": None, "refusal": None})]
    seen: set[int] = set()
    for index, fragment in pieces:
        parts = []
        if index not in seen:
            seen.add(index)
            parts.append(announced[index])
        parts.append({"index": index, "function": {"arguments": fragment}})
        out.append(chunk({"tool_calls": parts}))
    return [*out, chunk({}, "tool_calls"), chunk(None, usage=usage)]


def announcements(calls: list[llm.ToolCall]) -> list[dict[str, Any]]:
    return [{"index": c.index, "id": c.call_id, "type": "function", "function": {"name": c.name, "arguments": ""}}
            for c in calls]  # fmt: skip


@pytest.mark.exercise(ACCUMULATE)
def test_one_streamed_call_is_put_back_together(submission, model) -> None:
    chunks, gen = wire_chunks(model, [WEATHER])
    result = accumulate(submission, chunks)
    assert [only(c) for c in result["calls"]] == expected(gen), (
        f"the model called {expected(gen)}; accumulate_tool_calls gave {result['calls']!r}: join every "
        "fragment's function.arguments, in order, onto the call its index names"
    )


@pytest.mark.exercise(ACCUMULATE)
def test_parallel_calls_come_apart_by_index(submission, model) -> None:
    chunks, gen = wire_chunks(model, [WEATHER, CLOCK])
    result = accumulate(submission, chunks)
    assert [only(c) for c in result["calls"]] == expected(gen), (
        f"the model made two calls, {expected(gen)}; got {result['calls']!r}: each delta.tool_calls entry "
        "belongs to the call at its `index` (only the first fragment of a call carries its id and name)"
    )


@pytest.mark.exercise(ACCUMULATE)
def test_interleaved_indexes_come_apart_by_index(submission, model) -> None:
    chunks, gen = wire_chunks(model, [WEATHER, CLOCK], interleave=True)
    result = accumulate(submission, chunks)
    assert [only(c) for c in result["calls"]] == expected(gen), (
        f"fragments of two calls arrived in turn (index 0, 1, 0, 1, ...); the calls were {expected(gen)}, "
        f"got {result['calls']!r}: add each fragment to the call its own index names, not to the latest call"
    )


@pytest.mark.exercise(ACCUMULATE)
def test_finish_reason_and_the_usage_of_the_empty_choices_chunk_are_kept(submission, model) -> None:
    chunks, gen = wire_chunks(model, [WEATHER, CLOCK])
    assert chunks[-1]["choices"] == []
    result = accumulate(submission, chunks)
    assert result["finish_reason"] == "tool_calls", (
        f'finish_reason should be "tool_calls" (from the finish chunk); got {result["finish_reason"]!r}'
    )
    assert result["usage"] == chunks[-1]["usage"], (
        f"usage should be the last chunk's usage {chunks[-1]['usage']!r} — that chunk has an EMPTY choices "
        f"list; got {result['usage']!r}"
    )


@pytest.mark.exercise(ACCUMULATE)
def test_every_split_of_the_arguments_gives_the_same_call(submission, model) -> None:
    chunks, gen = wire_chunks(model, [WEATHER])
    (call,) = gen.calls
    head = {k: chunks[0][k] for k in ("id", "object", "created", "model")}
    for cut in range(len(call.arguments) + 1):  # every split point, including inside escapes and before é
        pieces = [(0, call.arguments[:cut]), (0, call.arguments[cut:])]
        result = accumulate(submission, recut(head, pieces, announcements(gen.calls), chunks[-1]["usage"]))
        assert [only(c) for c in result["calls"]] == expected(gen), (
            f"with the arguments cut into {call.arguments[:cut]!r} + {call.arguments[cut:]!r} the call should "
            f"still be {expected(gen)}; got {result['calls']!r} — a fragment is not JSON on its own, join first"
        )


@pytest.mark.exercise(ACCUMULATE)
def test_any_fragmentation_and_interleaving_gives_the_same_calls(submission, model) -> None:
    chunks, gen = wire_chunks(model, [WEATHER, CLOCK])
    head = {k: chunks[0][k] for k in ("id", "object", "created", "model")}
    truth = expected(gen)

    @PROPERTY
    @given(cuts=st.lists(st.lists(st.integers(0, 80), max_size=6), min_size=2, max_size=2), order=st.randoms())
    def same(cuts: list[list[int]], order: Any) -> None:
        queues = []
        for call, points in zip(gen.calls, cuts, strict=True):
            marks = sorted({0, len(call.arguments), *(min(p, len(call.arguments)) for p in points)})
            queues.append([(call.index, call.arguments[a:b]) for a, b in zip(marks, marks[1:], strict=False)])
        pieces = []
        while any(queues):  # a random interleaving that keeps each call's own order (call 0 announced first)
            ready = [q for q in queues if q] if pieces else [queues[0]]
            pieces.append(order.choice(ready).pop(0))
        result = accumulate(submission, recut(head, pieces, announcements(gen.calls), chunks[-1]["usage"]))
        assert [only(c) for c in result["calls"]] == truth, (
            f"cut and interleaved as {pieces!r} the calls should be {truth}; got {result['calls']!r}"
        )

    within(60, same, what="accumulate_tool_calls")


# --------------------------------------------------------------------------- relay_tool_calls


def relay(submission, servers, token_interval: float) -> tuple[str, Model]:
    model = start_model(servers, "lab10-check-relay-llm", ttft=0.02, token_interval=token_interval)
    learner = serve(submission.relay_tool_calls(model.client()), name="lab10-check-relay")
    servers.append(learner)
    return learner.url, model


@pytest.fixture
def relayed(submission, servers) -> tuple[str, Model]:
    return relay(submission, servers, token_interval=0.03)


@pytest.fixture
def slowly_relayed(submission, servers) -> tuple[str, Model]:
    """A model slow enough (0.25 s a fragment) that no load on the machine lets it finish a call before we leave."""
    return relay(submission, servers, token_interval=0.25)


def events_named(reply: Any, name: str) -> list[dict[str, Any]]:
    return [reply.payload(i) for i, n in enumerate(reply.names) if n == name]


async def chat(url: str, **options: Any) -> Any:
    prompt = unique_prompt("What is the weather in Paris, and the time in Tokyo?")
    reply = await read_events(f"{url}/chat", {"prompt": prompt, **options}, timeout=15, read_timeout=5)
    reply.prompt = prompt
    return reply


def generations(model: Model, prompt: str) -> list[llm.Generation]:
    return [g for g in model.generations if prompt in g.prompt]


@pytest.mark.exercise(RELAY)
async def test_each_call_is_announced_then_streamed_as_arguments_events(relayed) -> None:
    url, model = relayed
    reply = await chat(url)
    require_stream(reply)
    first = generations(model, reply.prompt)[0]
    tools = events_named(reply, "tool")
    assert [(t.get("index"), t.get("id"), t.get("name")) for t in tools] == [
        (c.index, c.call_id, c.name) for c in first.calls
    ], f"one tool event per call the model made, {[c.name for c in first.calls]}; got {tools}"
    for call in first.calls:
        deltas = [a.get("delta") for a in events_named(reply, "arguments") if a.get("index") == call.index]
        assert "".join(d for d in deltas if isinstance(d, str)) == call.arguments, (
            f"the arguments events of call {call.index} should join to {call.arguments!r}; got {deltas!r}"
        )
        assert len(deltas) > 3, "pass each fragment on as it arrives: one arguments event per fragment"


@pytest.mark.exercise(RELAY)
async def test_arguments_events_arrive_while_the_model_is_still_writing(relayed) -> None:
    url, model = relayed
    reply = await chat(url)
    require_stream(reply)
    first = generations(model, reply.prompt)[0]
    arrivals = [at for name, _, at in reply.events if name == "arguments"]
    assert arrivals, f"no arguments events; got {reply.names[:10]}"
    produced_last = first.token_times[-1]
    assert arrivals[0] < produced_last - 0.2, (
        f"the first arguments event arrived {(arrivals[0] - first.token_times[0]) * 1000:.0f} ms after the model "
        f"wrote the first fragment, when the model still had {(produced_last - first.token_times[0]) * 1000:.0f} ms "
        "to go: relay each fragment as it comes, do not collect the reply first"
    )


@pytest.mark.exercise(RELAY)
async def test_complete_calls_are_run_and_the_model_answers_with_their_results(relayed) -> None:
    url, model = relayed
    reply = await chat(url)
    require_stream(reply)
    asked = generations(model, reply.prompt)
    assert len(asked) == 2, (
        f"ask the model twice — for the calls, then with their results; it was asked {len(asked)} times"
    )
    first, second = asked
    calls = events_named(reply, "call")
    assert [(c.get("index"), c.get("name"), c.get("arguments")) for c in calls] == [
        (c.index, c.name, json.loads(c.arguments)) for c in first.calls
    ], f"one call event per call, its arguments the parsed JSON object; got {calls}"
    results = [r.get("output") for r in events_named(reply, "result")]
    assert second.text == "From the tools: " + "; ".join(map(str, results)) + ".", (
        f"the model should get each tool's output as a tool message; result events said {results}, "
        f"the model answered {second.text!r}"
    )
    assert not second.calls, "the second request must carry the tool results, or the model calls the tools again"
    tokens = "".join(t.get("text", "") for t in events_named(reply, "token"))
    assert tokens == second.text, f"the token events should carry the model's answer {second.text!r}; got {tokens!r}"
    assert reply.names[-1] == "done", f"the stream should end with done; it ended {reply.names[-3:]}"


@pytest.mark.exercise(RELAY)
async def test_interleaved_parallel_calls_are_relayed_by_index(submission, servers) -> None:
    model = start_model(servers, "lab10-check-interleaved", ttft=0.0, token_interval=0.005, interleave=True)
    learner = serve(submission.relay_tool_calls(model.client()), name="lab10-check-relay-interleaved")
    servers.append(learner)
    reply = await chat(learner.url)
    require_stream(reply)
    first = generations(model, reply.prompt)[0]
    calls = events_named(reply, "call")
    assert [(c.get("index"), c.get("arguments")) for c in calls] == [
        (c.index, json.loads(c.arguments)) for c in first.calls
    ], f"the model sent the two calls' fragments in turn; each call event needs its own call's arguments, got {calls}"


@pytest.mark.exercise(RELAY)
async def test_leaving_in_the_middle_of_a_tool_call_stops_the_model_at_once(slowly_relayed) -> None:
    url, model = slowly_relayed
    prompt = unique_prompt("What is the weather in Paris, and the time in Tokyo?")
    reply = await read_events(f"{url}/chat", {"prompt": prompt}, stop=after_events("arguments", 2), timeout=10)
    assert reply.left_at is not None, f"expected arguments events to hang up after; got {reply.names[:10]}"
    (gen,) = generations(model, prompt)
    assert await gen.wait_closed_async(3.0), "the model was still generating 3 s after the client left"
    assert not gen.finished, "the model finished its tool call although the client left in the middle of it"
    assert gen.closed_at is not None and gen.closed_at - reply.left_at < 0.2, (
        f"the model stopped {(gen.closed_at - reply.left_at) * 1000:.0f} ms after the client left: close the "
        "model's stream when the client goes (async with, or finally), within 200 ms"
    )
    assert gen.tokens_after_disconnect == 0, (
        f"the model wrote {gen.tokens_after_disconnect} fragments after the client left"
    )
    time.sleep(0.3)
    assert len(generations(model, prompt)) == 1, (
        "after the client left, no tool should run and no second request go out"
    )


@pytest.mark.exercise(RELAY)
async def test_a_model_failure_mid_call_ends_with_an_error_event_and_runs_no_tool(relayed) -> None:
    url, model = relayed
    reply = await chat(url, model="fault-midstream")
    require_stream(reply)
    assert reply.names and reply.names[-1] == "error", (
        f"when the model fails in the middle of a call, end the stream with an error event; got {reply.names[-3:]}"
    )
    assert "call" not in reply.names and "result" not in reply.names, "an unfinished call must not be run"
    assert len(generations(model, reply.prompt)) == 1, "no second request after the model failed"
