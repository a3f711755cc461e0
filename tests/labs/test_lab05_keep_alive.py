"""Checks for lab 05 — keep-alive: ``with_keepalive(source, interval, ping)``.

Sources here are the check's own async generators that record what happened to
them (cancelled? closed? when was each item made?). The check keeps a reference
to every source it hands out, so nothing but the wrapper can close one: a source
the wrapper walks away from stays unclosed, and the check sees it. Times are
``time.monotonic`` readings taken where things happen — in the source when it
makes an item, in the check the moment the wrapper hands a piece over (the
wrapper runs in the check's own task, so that is when it yielded). Bounds are
relative to those readings, so a busy machine stretches both sides alike.
The last check serves the wrapper (through ``streamcourse.harness``) behind the
course's idle-cutting proxy. The known wrong answers live in ``wrong/lab05.*``.
"""

from __future__ import annotations

import asyncio
import inspect
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import httpx
import pytest
from fastapi import FastAPI
from fastapi.responses import StreamingResponse

from streamcourse import harness
from streamcourse.checkkit import eventually
from streamcourse.proxies import idle_cutting_proxy
from streamcourse.server import serve

KEEPALIVE = "lab05.with_keepalive"
PING = ": ping\n\n"
INTERVAL = 0.1
UNCLOSED = (
    "after with_keepalive(...).aclose() the source was still open: in a `finally`, cancel the pending task "
    "(and await it), then `await source.aclose()` — a server closes your generator when its client leaves, "
    "and the source's own cleanup must run then"
)


@dataclass
class Source:
    """An async generator of ``data: i`` events after ``gaps`` seconds each, reporting its fate."""

    gaps: list[float]
    cancelled: bool = False
    closed_at: float | None = None
    made_at: list[float] = field(default_factory=list)  # when each item was made, read in the source itself
    sent: list[str] = field(default_factory=list)
    streams: list[AsyncIterator[str]] = field(default_factory=list)  # held, so only the wrapper can close them

    def stream(self) -> AsyncIterator[str]:
        stream = self._run()
        self.streams.append(stream)
        return stream

    async def _run(self) -> AsyncIterator[str]:
        try:
            for i, gap in enumerate(self.gaps):
                if gap:
                    await asyncio.sleep(gap)
                item = f"data: {i}\n\n"
                self.made_at.append(time.monotonic())
                self.sent.append(item)
                yield item
        except asyncio.CancelledError:
            self.cancelled = True
            raise
        finally:
            self.closed_at = time.monotonic()


async def wrap(submission, source: AsyncIterator[str], interval: float = INTERVAL) -> AsyncIterator[str]:
    """The learner's wrapper; a coroutine (no ``yield``) is awaited so an unwritten stub says so."""
    stream = submission.with_keepalive(source, interval)
    if inspect.iscoroutine(stream):
        await stream  # a stub raises NotImplementedError here
        pytest.fail("with_keepalive must be an async generator: `async def` with `yield` in its body", pytrace=False)
    if not hasattr(stream, "__anext__"):
        pytest.fail(f"with_keepalive(...) should return an async generator, not {type(stream).__name__}", pytrace=False)
    return stream


async def collect(submission, source: Source, interval: float = INTERVAL, limit: float = 10) -> list[tuple[float, str]]:
    """Everything the wrapper yields, with the moment it was handed over (bounded: never hangs)."""
    out: list[tuple[float, str]] = []
    wrapper = await wrap(submission, source.stream(), interval)

    async def drain() -> None:
        async for piece in wrapper:
            out.append((time.monotonic(), piece))
            if len(out) > 500:
                raise AssertionError(
                    "with_keepalive yielded more than 500 pieces for a handful of items: far too many pings"
                )

    try:
        await asyncio.wait_for(drain(), limit)
    except TimeoutError:
        pytest.fail(
            f"with_keepalive did not finish within {limit} s after its source ended: stop when the source stops",
            pytrace=False,
        )
    return out


def data_of(pieces: list[tuple[float, str]]) -> list[str]:
    return [p for _, p in pieces if p != PING]


def early_pings(pieces: list[tuple[float, str]], interval: float = INTERVAL) -> list[float]:
    """How soon after the piece before it each ping came, for pings sooner than 80 % of ``interval``."""
    gaps = [(t - before) for (before, _), (t, p) in zip(pieces, pieces[1:], strict=False) if p == PING]
    return [g for g in gaps if g < 0.8 * interval]


@pytest.mark.exercise(KEEPALIVE)
async def test_pings_fill_a_silence_once_per_interval(submission) -> None:
    source = Source([0.0, 0.55])  # one item, 5.5 intervals of silence, one item
    pieces = await collect(submission, source)
    items = [i for i, (_, p) in enumerate(pieces) if p != PING]
    assert len(items) == 2, f"the source sent 2 items; the wrapper passed on {data_of(pieces)!r}"
    first, second = items
    pings = [t for t, p in pieces[first:second] if p == PING]
    silence = source.made_at[1] - source.made_at[0]  # as long as it really was, on this machine, now
    most = int(silence / INTERVAL)
    assert 2 <= len(pings) <= most, (
        f"in {silence:.2f} s of silence ({silence / INTERVAL:.1f} intervals) expect a ping after each interval; got "
        f"{len(pings)}: wait for the next item with a timeout, and ping each time the timeout passes"
    )
    assert not early_pings(pieces), (
        f"a ping came {min(early_pings(pieces)):.3f} s after the piece before it: ping only after `interval` of silence"
    )


@pytest.mark.exercise(KEEPALIVE)
async def test_no_ping_comes_sooner_than_an_interval_after_the_last_piece(submission) -> None:
    source = Source([INTERVAL / 4] * 16)  # an item every quarter interval, for four intervals
    pieces = await collect(submission, source)
    early = early_pings(pieces)
    assert not early, (
        f"an item came every quarter interval, yet {len(early)} pings were sent less than an interval after the "
        "piece before them: ping only after `interval` seconds without anything sent, not on a fixed schedule"
    )


@pytest.mark.exercise(KEEPALIVE)
async def test_data_arrives_in_order_and_without_delay(submission) -> None:
    source = Source([0.0] * 50 + [0.03] * 5)
    start = time.monotonic()
    pieces = await collect(submission, source)
    assert data_of(pieces) == source.sent, "yield every item of the source, once, in its order"
    assert pieces[-1][0] - start < 0.15 + 1.5, "the items took far longer than the source: do not wait between items"


@pytest.mark.exercise(KEEPALIVE)
async def test_a_slow_source_loses_nothing_and_is_never_cancelled(submission) -> None:
    source = Source([2.5 * INTERVAL] * 4)  # each item takes 2.5 intervals
    pieces = await collect(submission, source)
    assert not source.cancelled, (
        "the source was cancelled while producing an item: never wait_for(anext(source), ...) — "
        "run anext(source) as a task and wait on the task with a timeout"
    )
    assert data_of(pieces) == [f"data: {i}\n\n" for i in range(4)], (
        f"a source that takes 2.5 intervals per item must still deliver all 4; got {data_of(pieces)}"
    )


@pytest.mark.exercise(KEEPALIVE)
async def test_closing_the_wrapper_while_the_source_is_silent_closes_the_source(submission) -> None:
    source = Source([0.0, 3600.0])  # one item, then it waits (for an hour)
    wrapper = await wrap(submission, source.stream())
    first = await asyncio.wait_for(anext(wrapper), 5)
    assert first == "data: 0\n\n", f"the first piece should be the first item; got {first!r}"
    second = await asyncio.wait_for(anext(wrapper), 5)  # a ping, while the source waits
    assert second == PING, f"while the source is silent the next piece should be a ping; got {second!r}"
    await asyncio.wait_for(wrapper.aclose(), 5)
    assert await eventually(lambda: source.closed_at is not None, 2), UNCLOSED


@pytest.mark.exercise(KEEPALIVE)
async def test_closing_the_wrapper_while_the_source_has_items_ready_closes_the_source(submission) -> None:
    source = Source([0.0] * 200)  # items without a pause: the next one is always ready
    wrapper = await wrap(submission, source.stream())
    got = [await asyncio.wait_for(anext(wrapper), 5) for _ in range(2)]
    assert got == ["data: 0\n\n", "data: 1\n\n"], f"the first pieces should be the first items; got {got!r}"
    await asyncio.wait_for(wrapper.aclose(), 5)
    assert await eventually(lambda: source.closed_at is not None, 2), (
        UNCLOSED + " — even when the source is not waiting but stands at a `yield` with its next item ready "
        "(cancelling a task blocked in queue.put, or no task at all, leaves it there)"
    )
    assert len(source.sent) < 200, (
        "the source was read to its end although nobody wanted more: stop reading when closed"
    )


@pytest.mark.exercise(KEEPALIVE)
async def test_an_endpoint_using_it_survives_an_idle_cutting_proxy(submission, servers) -> None:
    async def quiet() -> AsyncIterator[str]:
        yield "data: 0\n\n"
        await asyncio.sleep(0.8)  # longer than the proxy's idle timeout
        yield "data: 1\n\n"

    await (await wrap(submission, quiet())).aclose()  # an unwritten stub fails here, not inside the server
    bare = FastAPI()  # the check's own endpoint without pings: proves the proxy cuts a quiet stream

    @bare.get("/stream")
    async def bare_stream() -> StreamingResponse:
        return StreamingResponse(quiet(), media_type="text/event-stream")

    tag = uuid.uuid4().hex[:8]
    kept = serve(
        submission.build(harness.wrapped_stream_app, submission.with_keepalive, quiet(), 0.1), name=f"lab05-kept-{tag}"
    )
    plain = serve(bare, name=f"lab05-bare-{tag}")
    servers += [kept, plain]
    kept_proxy = idle_cutting_proxy(kept.url, idle_timeout=0.4, name=f"lab05-idle-kept-{tag}")
    plain_proxy = idle_cutting_proxy(plain.url, idle_timeout=0.4, name=f"lab05-idle-bare-{tag}")
    servers += [kept_proxy, plain_proxy]
    async with httpx.AsyncClient(timeout=10) as client:
        with pytest.raises(httpx.RemoteProtocolError):  # the proxy works: a quiet stream is cut
            await asyncio.wait_for(client.get(plain_proxy.url + "/stream"), 10)
        try:
            response = await asyncio.wait_for(client.get(kept_proxy.url + "/stream"), 10)
        except httpx.RemoteProtocolError:
            pytest.fail(
                "behind a proxy that cuts after 0.4 s of silence the stream was cut: ping every `interval` of silence",
                pytrace=False,
            )
    body = response.text
    assert "data: 0\n\n" in body and "data: 1\n\n" in body, f"both events should pass the proxy; got {body!r}"
