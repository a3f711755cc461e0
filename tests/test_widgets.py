"""The notebook widgets: a live token view whose Stop button cancels the stream, and the wire view."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
from fastapi import FastAPI
from fastapi.responses import StreamingResponse

from streamcourse.checkkit import eventually
from streamcourse.server import serve
from streamcourse.widgets import TokenView, WireView


async def pieces(n: int, delay: float, closed: list[str]) -> AsyncIterator[str]:
    try:
        for i in range(n):
            await asyncio.sleep(delay)
            yield f"t{i} "
    finally:
        closed.append("closed")


async def test_token_view_shows_every_piece_and_times_the_first() -> None:
    view, closed = TokenView(), []
    view.start(pieces(5, 0.01, closed))
    await view.wait(5)
    assert view.text == "t0 t1 t2 t3 t4 " and view.tokens == 5 and view.outcome == "finished"
    assert view.first_token_at is not None and 0 < view.first_token_at <= view.ended_at
    assert closed == ["closed"] and view.button.disabled


async def test_stop_button_cancels_the_stream_and_closes_its_source() -> None:
    view, closed = TokenView(), []
    view.start(pieces(1000, 0.01, closed))
    assert await eventually(lambda: view.tokens >= 3, 10), "the view should show pieces as they arrive"
    view.button.click()
    await view.wait(5)
    assert view.outcome == "stopped" and 0 < view.tokens < 1000
    assert closed == ["closed"], "the source generator's finally should run when Stop is pressed"


async def test_stop_closes_the_http_connection_so_the_server_sees_the_client_leave() -> None:
    ended: list[str] = []

    async def endless() -> AsyncIterator[str]:
        try:
            while True:
                yield "tick "
                await asyncio.sleep(0.01)
        finally:
            ended.append("server generator closed")

    app = FastAPI()

    @app.get("/ticks")
    async def ticks() -> StreamingResponse:
        return StreamingResponse(endless(), media_type="text/plain")

    with serve(app, name="widgets-test") as srv:

        async def read() -> AsyncIterator[str]:
            async with httpx.AsyncClient() as http, http.stream("GET", f"{srv.url}/ticks") as r:
                async for text in r.aiter_text():
                    yield text

        view = TokenView()
        view.start(read())
        assert await eventually(lambda: view.tokens >= 1, 10), "the view should show the first ticks"
        view.stop()
        await view.wait(5)
        assert await eventually(lambda: bool(ended), 5), (
            "the server's generator should be closed once Stop closed the connection"
        )
    assert view.outcome == "stopped" and view.text.startswith("tick ")
    assert ended == ["server generator closed"]


async def test_wire_view_pairs_each_chunk_with_the_events_it_completed() -> None:
    async def events() -> AsyncIterator[str]:
        yield "event: token\ndata: caf"
        await asyncio.sleep(0.05)
        yield "é\n\n: ping\n\ndata: a\ndata: b\r\n\r\n"

    app = FastAPI()

    @app.get("/sse")
    async def sse() -> StreamingResponse:
        return StreamingResponse(events(), media_type="text/event-stream")

    with serve(app, name="widgets-wire") as srv:
        view = await WireView().record(f"{srv.url}/sse")
    assert len(view.rows) == 2 and view.rows[0].events == []
    got = [(e.event, e.data, e.comment) for e in view.rows[1].events]
    assert got == [("token", "café", False), ("", "ping", True), ("message", "a\nb", False)]
    assert "bytes on the wire" in view._repr_html_() and "café" in view.widget.value
