"""Checks for lab 05 — keep-alive: ``with_keepalive(source, interval, ping)``.

Sources here are small async generators that record what happened to them
(cancelled? closed? when?). Times are measured with ``time.monotonic`` and
compared with generous margins: the machine may be busy. The last check runs
the wrapper in a real endpoint behind the course's idle-cutting proxy.
The known wrong answers live in ``wrong/lab05.*``.
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

from streamcourse.proxies import idle_cutting_proxy
from streamcourse.server import serve

KEEPALIVE = "lab05.with_keepalive"
PING = ": ping\n\n"
INTERVAL = 0.1


@dataclass
class Source:
    """An async generator of ``data: i`` events after ``gaps`` seconds each, reporting its fate."""

    gaps: list[float]
    cancelled: bool = False
    closed_at: float | None = None
    sent: list[str] = field(default_factory=list)

    async def run(self) -> AsyncIterator[str]:
        try:
            for i, gap in enumerate(self.gaps):
                await asyncio.sleep(gap)
                item = f"data: {i}\n\n"
                self.sent.append(item)
                yield item
        except asyncio.CancelledError:
            self.cancelled = True
            raise
        finally:
            self.closed_at = time.monotonic()


async def collect(
    submission, source: AsyncIterator[str], interval: float = INTERVAL, limit: float = 10
) -> list[tuple[float, str]]:
    """Everything the wrapper yields, with its time since the start (bounded: never hangs)."""
    start = time.monotonic()
    out: list[tuple[float, str]] = []

    async def drain() -> None:
        async for piece in await wrap(submission, source, interval):
            out.append((time.monotonic() - start, piece))
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


async def wrap(submission, source: AsyncIterator[str], interval: float = INTERVAL) -> AsyncIterator[str]:
    """The learner's wrapper; a coroutine (no ``yield``) is awaited so an unwritten stub says so."""
    stream = submission.with_keepalive(source, interval)
    if inspect.iscoroutine(stream):
        await stream  # a stub raises NotImplementedError here
        pytest.fail("with_keepalive must be an async generator: `async def` with `yield` in its body", pytrace=False)
    if not hasattr(stream, "__anext__"):
        pytest.fail(f"with_keepalive(...) should return an async generator, not {type(stream).__name__}", pytrace=False)
    return stream


def data_of(pieces: list[tuple[float, str]]) -> list[str]:
    return [p for _, p in pieces if p != PING]


@pytest.mark.exercise(KEEPALIVE)
async def test_pings_fill_a_silence_once_per_interval(submission) -> None:
    source = Source([0.0, 0.55])  # one item, 5.5 intervals of silence, one item
    pieces = await collect(submission, source.run())
    pings = [t for t, p in pieces if p == PING]
    assert 3 <= len(pings) <= 6, (
        f"in 5.5 intervals of silence expect a ping after each interval (about 5); got {len(pings)}: "
        "wait for the next item with a timeout, and ping each time the timeout passes"
    )
    assert pings[0] >= 0.8 * INTERVAL, (
        f"the first ping came {pings[0]:.3f} s after the first item: ping only after `interval` of silence"
    )


@pytest.mark.exercise(KEEPALIVE)
async def test_no_pings_while_data_flows(submission) -> None:
    source = Source([INTERVAL / 4] * 16)  # an item every quarter interval, for four intervals
    pieces = await collect(submission, source.run())
    pings = [p for _, p in pieces if p == PING]
    assert not pings, (
        f"an item came every quarter interval, yet {len(pings)} pings were sent: "
        "ping only after `interval` seconds without anything sent, not on a fixed schedule"
    )


@pytest.mark.exercise(KEEPALIVE)
async def test_data_arrives_in_order_and_without_delay(submission) -> None:
    source = Source([0.0] * 50 + [0.03] * 5)
    pieces = await collect(submission, source.run())
    assert data_of(pieces) == source.sent, "yield every item of the source, once, in its order"
    assert pieces[-1][0] < 0.15 + 1.0, "the items took far longer than the source: do not wait between items"


@pytest.mark.exercise(KEEPALIVE)
async def test_a_slow_source_loses_nothing_and_is_never_cancelled(submission) -> None:
    source = Source([2.5 * INTERVAL] * 4)  # each item takes 2.5 intervals
    pieces = await collect(submission, source.run())
    assert not source.cancelled, (
        "the source was cancelled while producing an item: never wait_for(anext(source), ...) — "
        "run anext(source) as a task and wait on the task with a timeout"
    )
    assert data_of(pieces) == [f"data: {i}\n\n" for i in range(4)], (
        f"a source that takes 2.5 intervals per item must still deliver all 4; got {data_of(pieces)}"
    )


@pytest.mark.exercise(KEEPALIVE)
async def test_closing_the_wrapper_closes_the_source_within_100_ms(submission) -> None:
    source = Source([0.0, 3600.0])  # one item, then it waits (for an hour)
    wrapper = await wrap(submission, source.run())
    first = await asyncio.wait_for(anext(wrapper), 5)
    assert first == "data: 0\n\n", f"the first piece should be the first item; got {first!r}"
    second = await asyncio.wait_for(anext(wrapper), 5)  # a ping, while the source waits
    assert second == PING, f"while the source is silent the next piece should be a ping; got {second!r}"
    closed = time.monotonic()
    await asyncio.wait_for(wrapper.aclose(), 5)
    await asyncio.sleep(0.1)
    assert source.closed_at is not None, (
        "after with_keepalive(...).aclose() the source was still open: in a `finally`, cancel the pending task "
        "and close the source — a server closes your generator when the client leaves"
    )
    assert source.closed_at - closed <= 0.1 + 0.05, (
        f"the source closed {source.closed_at - closed:.3f} s after the wrapper: expected within 100 ms"
    )


@pytest.mark.exercise(KEEPALIVE)
async def test_an_endpoint_using_it_survives_an_idle_cutting_proxy(submission) -> None:
    async def quiet() -> AsyncIterator[str]:
        yield "data: 0\n\n"
        await asyncio.sleep(0.8)  # longer than the proxy's idle timeout
        yield "data: 1\n\n"

    await (await wrap(submission, quiet())).aclose()  # an unwritten stub fails here, not inside the server
    app = FastAPI()

    @app.get("/bare")
    async def bare() -> StreamingResponse:
        return StreamingResponse(quiet(), media_type="text/event-stream")

    @app.get("/kept")
    async def kept() -> StreamingResponse:
        return StreamingResponse(await wrap(submission, quiet()), media_type="text/event-stream")

    tag = uuid.uuid4().hex[:8]
    upstream = serve(app, name=f"lab05-upstream-{tag}")
    proxy = idle_cutting_proxy(upstream.url, idle_timeout=0.4, name=f"lab05-idle-{tag}")
    try:
        async with httpx.AsyncClient(timeout=10) as client:
            with pytest.raises(httpx.RemoteProtocolError):  # the proxy works: a quiet stream is cut
                await asyncio.wait_for(client.get(proxy.url + "/bare"), 10)
            try:
                response = await asyncio.wait_for(client.get(proxy.url + "/kept"), 10)
            except httpx.RemoteProtocolError:
                pytest.fail(
                    "behind a proxy that cuts after 0.4 s of silence the stream was cut: ping every `interval` of silence",
                    pytrace=False,
                )
        body = response.text
        assert "data: 0\n\n" in body and "data: 1\n\n" in body, f"both events should pass the proxy; got {body!r}"
    finally:
        proxy.stop()
        upstream.stop()
