"""Checks for lab 08 — cancellation: ``cancellable`` and ``cancel_endpoint``.

The upstream is the course's embedded OpenAI-compatible server, which records
every generation: when each token was produced and when its stream closed. A
check that disconnects notes the time the moment its connection is closed
(``time.monotonic``, the same clock in the same process as the model's record)
and compares it with that record. ``app.state.billed`` and ``app.state.running``
are what the exercises ask the learner to keep; that the model stopped is read
from the model's own record, never from them.
"""

from __future__ import annotations

import asyncio
import json
import time

import httpx
import pytest
from httpx_sse import aconnect_sse

from streamcourse import llm
from streamcourse.checkkit import Model, eventually, read_events, start_model, unique_prompt
from streamcourse.server import serve

CANCELLABLE = "lab08.cancellable"
CANCEL = "lab08.cancel_endpoint"


def start(servers, factory, name: str) -> tuple[str, object, Model]:
    """A fresh model, and the learner's app (made by ``factory(client)``) in front of it."""
    model = start_model(servers, "lab08-check-llm", ttft=0.01, token_interval=0.02, length=60)
    learner = factory(model.client())
    server = serve(learner, name=name)
    servers.append(server)
    return server.url, learner, model


@pytest.fixture
def relay(submission, servers) -> tuple[str, object, Model]:
    return start(servers, submission.cancellable, "lab08-check-cancellable")


@pytest.fixture
def named(submission, servers) -> tuple[str, object, Model]:
    return start(servers, submission.cancel_endpoint, "lab08-check-cancel")


async def read_then_leave(url: str, tokens: int, model: str = llm.MODEL, linger: float = 0.0) -> tuple[int, float, str]:
    """Read ``tokens`` token events, wait ``linger`` s, then close the connection; returns (tokens read, when it closed, prompt)."""
    got = 0
    left_at = 0.0
    prompt = unique_prompt("cancel me")

    async def read() -> None:
        nonlocal got, left_at
        async with httpx.AsyncClient(timeout=5) as http:
            async with aconnect_sse(http, "POST", f"{url}/chat", json={"prompt": prompt, "model": model}) as source:
                assert source.response.status_code == 200, (
                    f"expected a 200 event stream, got {source.response.status_code}"
                )
                async for event in source.aiter_sse():
                    if event.event == "token":
                        got += 1
                        if got == tokens:
                            break
                await asyncio.sleep(linger)
            left_at = time.monotonic()  # the connection has just been closed: the client is gone

    try:
        await asyncio.wait_for(read(), 5)
    except TimeoutError:
        pytest.fail(f"expected {tokens} token events within 5 s, got {got}", pytrace=False)
    return got, left_at, prompt


def assert_upstream_closed(gen, left_at: float) -> None:
    closed = gen.closed_at is not None
    assert closed, (
        "the model was still generating 1 s after the client left: close the upstream stream when the response "
        "is over (the upstream_opener dependency does) and don't leave it running in a background task"
    )
    delay = (gen.closed_at - left_at) * 1000
    late = sum(1 for t in gen.token_times if t > left_at)
    assert delay < 200, f"the model's stream closed {delay:.0f} ms after the client left: expected under 200 ms"
    assert late <= 2, f"the model produced {late} tokens after the client left: expected at most 2"


# --------------------------------------------------------------------------- cancellable


@pytest.mark.exercise(CANCELLABLE)
async def test_a_finished_stream_relays_every_token_and_is_billed_once(relay) -> None:
    url, app, model = relay
    prompt = unique_prompt("all of it")
    reply = await read_events(f"{url}/chat", {"prompt": prompt}, read_timeout=5)
    names = reply.names
    gen = model.generation(prompt)
    assert "done" not in names or names[-1] == "done", (
        f"an event came after done ({names[names.index('done') + 1 :][:3]}): nothing may follow the last event — "
        "a `yield` in `finally` sends a farewell only when the stream ends normally, and raises or is lost when "
        "the client has gone"
    )
    assert names.count("token") == gen.tokens_sent and names[-1:] == ["done"], (
        f"expected {gen.tokens_sent} token events then done; got {len(names)} events ending {names[-2:]}"
    )
    assert await eventually(lambda: app.state.billed == [gen.tokens_sent], 3), (
        f"a finished stream should be billed once for its {gen.tokens_sent} tokens: app.state.billed is {app.state.billed!r}"
    )


@pytest.mark.exercise(CANCELLABLE)
async def test_the_model_stops_within_200ms_of_the_client_leaving(relay) -> None:
    url, _, model = relay
    _, left_at, prompt = await read_then_leave(url, 5)
    gen = model.generation(prompt)
    await gen.wait_closed_async(1.0)
    assert_upstream_closed(gen, left_at)


@pytest.mark.exercise(CANCELLABLE)
async def test_a_client_that_leaves_is_billed_for_what_it_got(relay) -> None:
    url, app, model = relay
    got, _, prompt = await read_then_leave(url, 5)
    gen = model.generation(prompt)
    ok = await eventually(lambda: len(app.state.billed) == 1, 3)
    assert ok, (
        f"the client left after {got} tokens but app.state.billed is {app.state.billed!r} after 3 s: "
        "the server cancels the generator, so code after the loop never runs — bill in `finally`"
    )
    assert got <= app.state.billed[0] <= gen.tokens_sent, (
        f"the client received {got} tokens and the model made {gen.tokens_sent}; billed {app.state.billed[0]}"
    )


@pytest.mark.exercise(CANCELLABLE)
async def test_a_client_that_leaves_while_the_model_is_silent_is_billed_and_the_model_stops(relay) -> None:
    url, app, model = relay
    got, left_at, prompt = await read_then_leave(url, 3, model="fault-stall", linger=0.1)
    gen = model.generation(prompt)
    await gen.wait_closed_async(1.0)
    assert_upstream_closed(gen, left_at)
    ok = await eventually(lambda: app.state.billed == [3], 3)
    assert ok, (
        f"the model went silent after 3 tokens and the client left; expected app.state.billed == [3], got "
        f"{app.state.billed!r} — a generator waiting for a silent model never reaches an is_disconnected() "
        "check: it is cancelled at its await — bill after the `yield` of a dependency, which always runs"
    )


# --------------------------------------------------------------------------- cancel_endpoint


async def open_named(http: httpx.AsyncClient, url: str, model: str = llm.MODEL, prompt: str = "a named generation"):
    """Enter an SSE connection and return (context, source, generation id from the start event)."""
    ctx = aconnect_sse(http, "POST", f"{url}/chat", json={"prompt": prompt, "model": model})
    source = await ctx.__aenter__()
    events = source.aiter_sse()
    first = await asyncio.wait_for(anext(events), 3)
    assert first.event == "start", f"the first event should be 'start' with the generation id; got {first.event!r}"
    try:
        generation_id = json.loads(first.data)["id"]
    except (ValueError, KeyError, TypeError):
        pytest.fail(f'the start event\'s data must be JSON like {{"id": "..."}}; got {first.data!r}', pytrace=False)
    assert isinstance(generation_id, str) and generation_id, "the generation id should be a non-empty string"
    return ctx, events, generation_id


@pytest.mark.exercise(CANCEL)
async def test_the_stream_starts_with_an_id_that_is_in_the_registry_while_it_runs(named) -> None:
    url, app, _ = named
    async with httpx.AsyncClient(timeout=5) as http:
        ctx, events, generation_id = await open_named(http, url)
        try:
            assert generation_id in app.state.running, (
                f"while generation {generation_id!r} streams, app.state.running should hold it; it holds {list(app.state.running)!r}"
            )
        finally:
            await ctx.__aexit__(None, None, None)


@pytest.mark.exercise(CANCEL)
async def test_cancelling_by_id_ends_the_stream_with_a_cancelled_event_and_stops_the_model(named) -> None:
    url, app, model = named
    prompt = unique_prompt("a named generation")
    async with httpx.AsyncClient(timeout=5) as http:
        ctx, events, generation_id = await open_named(http, url, prompt=prompt)
        try:
            await asyncio.wait_for(anext(events), 3)  # one token
            cancelled_at = time.monotonic()  # the cancel request leaves now
            answer = await http.post(f"{url}/chat/{generation_id}/cancel")
            assert answer.status_code == 200, (
                f"cancelling a running generation should answer 200; got {answer.status_code} {answer.text}"
            )
            rest = await asyncio.wait_for(_names(events), 2)
        except TimeoutError:
            pytest.fail("the stream did not end within 2 s of the cancel request", pytrace=False)
        finally:
            await ctx.__aexit__(None, None, None)
    assert rest and rest[-1] == "cancelled" and "done" not in rest, (
        f"after the cancel request the stream should end with one 'cancelled' event; the events after it were {rest[-3:]}"
    )
    gen = model.generation(prompt)
    assert await gen.wait_closed_async(1.0) and not gen.finished, "the model's stream should be closed, unfinished"
    assert gen.closed_at - cancelled_at < 0.5, "the model's stream should close within 0.5 s of the cancel request"


async def _names(events) -> list[str]:
    return [e.event async for e in events]


@pytest.mark.exercise(CANCEL)
async def test_an_unknown_id_gets_a_404_that_names_it(named) -> None:
    url, _, _ = named
    async with httpx.AsyncClient(timeout=5) as http:
        answer = await http.post(f"{url}/chat/no-such-generation/cancel")
    assert answer.status_code == 404, (
        f"cancelling an id that is not running should answer 404; got {answer.status_code}"
    )
    assert "no-such-generation" in answer.text, f"the 404 should name the id it did not find; got {answer.text!r}"


@pytest.mark.exercise(CANCEL)
async def test_a_finished_generation_can_no_longer_be_cancelled(named) -> None:
    url, _, _ = named
    async with httpx.AsyncClient(timeout=5) as http:
        ctx, events, generation_id = await open_named(http, url)
        try:
            names = await asyncio.wait_for(_names(events), 5)
        finally:
            await ctx.__aexit__(None, None, None)
        assert names and names[-1] == "done", f"a full stream should end with done; got {names[-2:]}"
        statuses: list[int] = []

        async def refused() -> bool:  # the server finishes a response's cleanup just after its last byte
            statuses.append((await http.post(f"{url}/chat/{generation_id}/cancel")).status_code)
            return statuses[-1] == 404

        deadline = time.monotonic() + 1.0
        while not await refused() and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
    assert statuses[-1] == 404, (
        f"a generation that has finished is not running: cancelling it should answer 404 once its stream has "
        f"ended; 1 s later it still answered {statuses[-1]}"
    )


@pytest.mark.exercise(CANCEL)
async def test_the_registry_is_empty_after_100_mixed_generations(named) -> None:
    url, app, _ = named
    outcomes: dict[str, int] = {}
    limit = asyncio.Semaphore(10)

    async def one(kind: str, http: httpx.AsyncClient) -> None:
        async with limit:
            if kind == "rate limited":
                answer = await http.post(f"{url}/chat", json={"prompt": "x", "model": "fault-429"})
                assert answer.status_code >= 400, (
                    f"a rate-limited model should give an HTTP error, got {answer.status_code}"
                )
            else:
                model = "fault-midstream" if kind == "failed" else llm.MODEL
                ctx, events, generation_id = await open_named(http, url, model)
                try:
                    if kind == "cancelled":
                        await anext(events)
                        await http.post(f"{url}/chat/{generation_id}/cancel")
                        await _names(events)
                    elif kind == "client left":
                        await anext(events)
                    else:  # completed or failed: read to the end
                        await _names(events)
                finally:
                    await ctx.__aexit__(None, None, None)
            outcomes[kind] = outcomes.get(kind, 0) + 1

    kinds = ["completed", "cancelled", "client left", "failed", "rate limited"] * 20
    async with httpx.AsyncClient(timeout=5, limits=httpx.Limits(max_connections=20)) as http:
        try:
            await asyncio.wait_for(asyncio.gather(*(one(k, http) for k in kinds)), 20)
        except TimeoutError:
            pytest.fail(f"100 generations did not finish within 20 s (done: {outcomes})", pytrace=False)
    await eventually(lambda: not app.state.running, 5)
    assert not app.state.running, (
        f"after 100 generations ({outcomes}) none is running, but the registry still holds {len(app.state.running)} "
        "entries: remove the entry where it always happens — after the `yield` of a dependency that registered it — "
        "not after the loop (a generator's own `finally` can come late: when the client leaves while FastAPI holds "
        "its last event, the generator waits for the garbage collector), so cancelled, failed and abandoned streams go too"
    )
