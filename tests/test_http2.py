"""``streamcourse.http2``: an app served over HTTP/2 with TLS, in a thread, that always stops."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import StreamingResponse

from streamcourse.http2 import serve_http2


def app_noting_connections(seen: list[tuple[str, int]]) -> FastAPI:
    app = FastAPI()

    @app.get("/events")
    async def events(request: Request, endless: bool = False) -> StreamingResponse:
        seen.append((request.scope["http_version"], request.scope["client"][1]))

        async def body() -> AsyncIterator[str]:
            for i in range(10_000 if endless else 3):
                yield f"data: {i}\n\n"
                await asyncio.sleep(0.05)

        return StreamingResponse(body(), media_type="text/event-stream")

    return app


async def test_concurrent_streams_share_one_http2_connection() -> None:
    seen: list[tuple[str, int]] = []
    with serve_http2(app_noting_connections(seen)) as server:
        assert server.url.startswith("https://127.0.0.1:")
        async with httpx.AsyncClient(http2=True, verify=False, timeout=10) as http:

            async def one() -> bytes:
                async with http.stream("GET", f"{server.url}/events") as response:
                    assert response.http_version == "HTTP/2"
                    return await response.aread()

            bodies = await asyncio.gather(*(one() for _ in range(8)))
    assert bodies == [b"data: 0\n\ndata: 1\n\ndata: 2\n\n"] * 8
    assert {version for version, _ in seen} == {"2"}
    assert len({port for _, port in seen}) == 1, f"eight streams, one connection; the server saw {seen}"


async def test_stop_ends_even_with_an_endless_stream_open() -> None:
    server = serve_http2(app_noting_connections([]))
    http = httpx.AsyncClient(http2=True, verify=False, timeout=10)
    response = await http.send(http.build_request("GET", f"{server.url}/events?endless=true"), stream=True)
    chunks = response.aiter_bytes()
    assert (await anext(chunks)).startswith(b"data: 0")
    started = time.monotonic()
    await asyncio.to_thread(server.stop)
    took = time.monotonic() - started
    assert not server.running and took < 3, f"stop() took {took:.2f} s with a stream open"
    with pytest.raises(httpx.HTTPError):  # the stream was cut, not left hanging
        async with asyncio.timeout(5):
            async for _ in chunks:
                pass
    await http.aclose()
