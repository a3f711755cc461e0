"""The misbehaving middlemen of lesson 05, specified against real sockets.

Every test runs a real upstream (FastAPI on uvicorn) behind a real proxy and reads it
with a real httpx client; arrival times are measured, never assumed. The upstream
records, per request ``tag``, when its generator's ``finally`` ran — that is how the
tests prove that a cut or a departing client reaches the upstream.
"""

from __future__ import annotations

import asyncio
import gzip
import itertools
import logging
import socket
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from httpx_sse import aconnect_sse

from streamcourse.proxies import buffering_proxy, idle_cutting_proxy
from streamcourse.server import Server, serve

IDLE = 0.3  # the idle proxy's timeout in these tests
GAP = 0.1  # seconds between upstream events
SSE = "text/event-stream"


class Upstream:
    """The server behind the proxies, and what its generators reported."""

    def __init__(self) -> None:
        self.finished: defaultdict[str, threading.Event] = defaultdict(threading.Event)
        self.finished_at: dict[str, float] = {}
        self.app = FastAPI()
        self._routes()

    def _closing(self, tag: str, body: AsyncIterator[str]) -> AsyncIterator[str]:
        async def wrapped() -> AsyncIterator[str]:
            try:
                async for piece in body:
                    yield piece
            finally:
                self.finished_at[tag] = time.monotonic()
                self.finished[tag].set()

        return wrapped()

    def _routes(self) -> None:
        app = self.app

        @app.get("/events")
        async def events(tag: str, n: int = 5, nobuf: bool = False) -> StreamingResponse:
            async def body() -> AsyncIterator[str]:
                for i in itertools.count() if n < 0 else range(n):
                    yield f"data: {i}\n\n"
                    await asyncio.sleep(GAP)

            headers = {"X-Accel-Buffering": "no"} if nobuf else {}
            return StreamingResponse(self._closing(tag, body()), media_type=SSE, headers=headers)

        @app.get("/silent")
        async def silent(tag: str) -> StreamingResponse:
            async def body() -> AsyncIterator[str]:
                yield "data: first\n\n"
                await asyncio.sleep(5)  # far longer than IDLE
                yield "data: too late\n\n"

            return StreamingResponse(self._closing(tag, body()), media_type=SSE)

        @app.get("/pinging")
        async def pinging(tag: str) -> StreamingResponse:
            async def body() -> AsyncIterator[str]:
                for i in range(2):
                    for _ in range(5):  # data every 0.5 s (> IDLE), a comment every 0.1 s (< IDLE)
                        await asyncio.sleep(GAP)
                        yield ": ping\n\n"
                    yield f"data: {i}\n\n"

            return StreamingResponse(self._closing(tag, body()), media_type=SSE)

        @app.api_route("/echo/{word}", methods=["GET", "POST", "PUT"])
        async def echo(word: str, request: Request) -> JSONResponse:
            return JSONResponse(
                {
                    "word": word,
                    "method": request.method,
                    "query": str(request.query_params),
                    "body": (await request.body()).decode(),
                    "x-test": request.headers.get("x-test"),
                },
                status_code=201,
                headers={"X-Upstream": "yes"},
            )

        @app.get("/gzipped")
        async def gzipped() -> Response:
            return Response(
                gzip.compress(b"hello " * 1000), media_type="text/plain", headers={"Content-Encoding": "gzip"}
            )

        @app.get("/broken")
        async def broken() -> StreamingResponse:
            async def body() -> AsyncIterator[str]:
                yield "data: first\n\n"
                await asyncio.sleep(GAP)
                raise RuntimeError("upstream breaks off mid-body (on purpose)")

            return StreamingResponse(body(), media_type=SSE)

        @app.get("/slow-headers")
        async def slow_headers() -> Response:
            await asyncio.sleep(1)  # > IDLE, without a byte
            return Response("late")


@pytest.fixture(scope="module")
def upstream() -> Iterator[tuple[Upstream, Server]]:
    up = Upstream()
    with serve(up.app, name="test-proxies-upstream") as server:
        yield up, server


@pytest.fixture(scope="module")
def buffering(upstream: tuple[Upstream, Server]) -> Iterator[Server]:
    with buffering_proxy(upstream[1].url, name="test-buffering-proxy") as proxy:
        yield proxy


@pytest.fixture(scope="module")
def idle(upstream: tuple[Upstream, Server]) -> Iterator[Server]:
    with idle_cutting_proxy(upstream[1].url, IDLE, name="test-idle-proxy") as proxy:
        yield proxy


class Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture(autouse=True)
def no_server_errors() -> Iterator[None]:
    """A proxy must handle leaving clients and cuts without an error in uvicorn's log."""
    handler = Collect()
    logger = logging.getLogger("uvicorn.error")  # where uvicorn reports "Exception in ASGI application"
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)
    unexpected = [
        r.getMessage() + repr(r.exc_info and r.exc_info[1])
        for r in handler.records
        if "on purpose" not in repr(r.exc_info and r.exc_info[1])
    ]
    assert not unexpected, f"servers logged errors: {unexpected}"


def new_tag() -> str:
    return uuid.uuid4().hex


async def arrivals(url: str) -> list[tuple[float, bytes]]:
    """Every chunk the client receives, with its time.monotonic() arrival."""
    seen = []
    async with httpx.AsyncClient(timeout=10) as client, client.stream("GET", url) as response:
        async for chunk in response.aiter_raw():
            seen.append((time.monotonic(), chunk))
    return seen


# --- buffering proxy -------------------------------------------------------------


async def test_buffering_proxy_sends_the_first_byte_only_after_the_upstream_finished(upstream, buffering):
    up, _ = upstream
    tag = new_tag()
    started = time.monotonic()
    seen = await arrivals(f"{buffering.url}/events?tag={tag}")
    first_byte = seen[0][0]
    assert first_byte >= up.finished_at[tag], "a byte reached the client before the upstream was done"
    assert first_byte - started >= 4 * GAP
    assert b"".join(c for _, c in seen) == b"".join(b"data: %d\n\n" % i for i in range(5))


async def test_buffering_proxy_streams_when_upstream_sends_x_accel_buffering_no(upstream, buffering):
    up, _ = upstream
    tag = new_tag()
    seen = await arrivals(f"{buffering.url}/events?tag={tag}&nobuf=true")
    assert seen[0][0] < up.finished_at[tag] - 2 * GAP, "the first event waited for the upstream to finish"
    assert len(seen) >= 3, "chunks should arrive one by one, not together"


async def test_buffering_proxy_passes_method_path_query_headers_body_and_status_through(upstream, buffering):
    async with httpx.AsyncClient(timeout=10) as client:
        direct = await client.post(
            f"{upstream[1].url}/echo/hi%20there?a=1&b=%C3%A9", content=b"payload", headers={"X-Test": "42"}
        )
        proxied = await client.post(
            f"{buffering.url}/echo/hi%20there?a=1&b=%C3%A9", content=b"payload", headers={"X-Test": "42"}
        )
    assert proxied.status_code == direct.status_code == 201
    assert (
        proxied.json()
        == direct.json()
        == {"word": "hi there", "method": "POST", "query": "a=1&b=%C3%A9", "body": "payload", "x-test": "42"}
    )
    for name in ("content-type", "content-length", "x-upstream"):
        assert proxied.headers.get(name) == direct.headers.get(name), name


async def test_buffering_proxy_passes_an_event_stream_content_type_and_body_unchanged(upstream, buffering):
    async with httpx.AsyncClient(timeout=10) as client:
        direct, proxied = await asyncio.gather(
            client.get(f"{upstream[1].url}/events?tag={new_tag()}"),
            client.get(f"{buffering.url}/events?tag={new_tag()}"),
        )
    assert proxied.status_code == 200
    assert proxied.headers["content-type"] == direct.headers["content-type"]
    assert proxied.content == direct.content


async def test_buffering_proxy_passes_an_error_status_through(buffering):
    async with httpx.AsyncClient(timeout=10) as client:
        response = await client.get(f"{buffering.url}/no-such-page")
    assert response.status_code == 404
    assert response.json() == {"detail": "Not Found"}


async def test_buffering_proxy_passes_a_gzip_body_through_still_compressed(buffering):
    async with httpx.AsyncClient(timeout=10) as client:
        response = await client.get(f"{buffering.url}/gzipped")
    assert response.headers["content-encoding"] == "gzip"
    assert response.text == "hello " * 1000


async def test_buffering_proxy_hides_x_accel_headers_like_nginx(buffering):
    async with httpx.AsyncClient(timeout=10) as client:
        response = await client.get(f"{buffering.url}/events?tag={new_tag()}&n=1&nobuf=true")
    assert "x-accel-buffering" not in response.headers


async def test_buffering_proxy_closes_the_upstream_when_the_client_leaves(upstream, buffering):
    up, _ = upstream
    tag = new_tag()
    with pytest.raises(httpx.ReadTimeout):  # an endless stream: nothing ever gets through
        async with httpx.AsyncClient(timeout=3 * GAP) as client:
            await client.get(f"{buffering.url}/events?tag={tag}&n=-1")
    assert await asyncio.to_thread(up.finished[tag].wait, 3), "upstream generator never saw the disconnect"


async def test_proxy_answers_502_when_the_upstream_is_unreachable():
    with socket.socket() as closed:  # bound but not listening: connections are refused
        closed.bind(("127.0.0.1", 0))
        with buffering_proxy(f"http://127.0.0.1:{closed.getsockname()[1]}", name="test-dead-proxy") as proxy:
            async with httpx.AsyncClient(timeout=10) as client:
                response = await client.get(f"{proxy.url}/anything")
    assert response.status_code == 502


async def test_buffering_proxy_answers_502_when_the_upstream_breaks_off_mid_body(buffering):
    async with httpx.AsyncClient(timeout=10) as client:
        response = await client.get(f"{buffering.url}/broken")
    assert response.status_code == 502


# --- idle-cutting proxy ----------------------------------------------------------


async def test_idle_proxy_relays_chunks_as_they_arrive(upstream, idle):
    up, _ = upstream
    tag = new_tag()
    seen = await arrivals(f"{idle.url}/events?tag={tag}")
    assert seen[0][0] < up.finished_at[tag] - 2 * GAP, "the first event waited for the upstream to finish"
    assert b"".join(c for _, c in seen) == b"".join(b"data: %d\n\n" % i for i in range(5))


async def test_idle_proxy_cuts_a_stream_silent_longer_than_idle_timeout(idle):
    async with httpx.AsyncClient(timeout=10) as client, client.stream("GET", f"{idle.url}/silent?tag={new_tag()}") as r:
        chunks = r.aiter_raw()
        assert await anext(chunks) == b"data: first\n\n"
        last_byte = time.monotonic()
        with pytest.raises(httpx.RemoteProtocolError, match="incomplete chunked read"):
            await anext(chunks)
        silence = time.monotonic() - last_byte
    assert IDLE * 0.8 <= silence < IDLE + 1.5, f"cut after {silence:.3f} s of silence, expected about {IDLE}"


async def test_idle_cut_reaches_an_httpx_sse_client_as_remote_protocol_error(idle):
    received = []
    with pytest.raises(httpx.RemoteProtocolError):
        async with httpx.AsyncClient(timeout=10) as client:
            async with aconnect_sse(client, "GET", f"{idle.url}/silent?tag={new_tag()}") as source:
                async for event in source.aiter_sse():
                    received.append(event.data)
    assert received == ["first"]


async def test_idle_proxy_lets_a_stream_that_pings_more_often_than_idle_timeout_run_to_its_end(idle):
    async with httpx.AsyncClient(timeout=10) as client:
        async with aconnect_sse(client, "GET", f"{idle.url}/pinging?tag={new_tag()}") as source:
            data = [event.data async for event in source.aiter_sse()]
    assert data == ["0", "1"]  # each came after 0.5 s without data: only the pings kept it open


async def test_idle_proxy_closes_the_upstream_when_it_cuts(upstream, idle):
    up, _ = upstream
    tag = new_tag()
    with pytest.raises(httpx.RemoteProtocolError):
        async with httpx.AsyncClient(timeout=10) as client:
            await client.get(f"{idle.url}/silent?tag={tag}")
    assert await asyncio.to_thread(up.finished[tag].wait, 3), "upstream generator never saw the cut"


async def test_idle_proxy_closes_the_upstream_when_the_client_leaves(upstream, idle):
    up, _ = upstream
    tag = new_tag()
    async with httpx.AsyncClient(timeout=10) as client:
        async with client.stream("GET", f"{idle.url}/events?tag={tag}&n=-1") as response:
            async for _chunk in response.aiter_raw():
                break  # leave after the first event of an endless stream
    assert await asyncio.to_thread(up.finished[tag].wait, 3), "upstream generator never saw the disconnect"


async def test_idle_proxy_cuts_the_client_when_the_upstream_breaks_off_mid_body(idle):
    received = []
    with pytest.raises(httpx.RemoteProtocolError):
        async with httpx.AsyncClient(timeout=10) as client, client.stream("GET", f"{idle.url}/broken") as response:
            async for chunk in response.aiter_raw():
                received.append(chunk)
    assert received == [b"data: first\n\n"]


async def test_idle_proxy_answers_504_when_upstream_headers_take_longer_than_idle_timeout(idle):
    async with httpx.AsyncClient(timeout=10) as client:
        response = await client.get(f"{idle.url}/slow-headers")
    assert response.status_code == 504


def test_idle_proxy_refuses_a_timeout_that_is_not_positive():
    with pytest.raises(ValueError, match="idle_timeout"):
        idle_cutting_proxy("http://127.0.0.1:1", 0)
