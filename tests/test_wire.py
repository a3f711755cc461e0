"""wire records what the socket delivered and when; pacing scales lesson pauses."""

from __future__ import annotations

import asyncio

import matplotlib

matplotlib.use("Agg")

import pytest
from fastapi import FastAPI
from fastapi.responses import PlainTextResponse, StreamingResponse

from streamcourse import pacing, serve
from streamcourse.wire import awatch, timeline, watch


@pytest.fixture(scope="module")
def url():
    app = FastAPI()

    async def paced():
        for n in range(4):
            await asyncio.sleep(0.15)
            yield f"part {n}\n"

    @app.get("/stream")
    async def stream() -> StreamingResponse:
        return StreamingResponse(paced(), media_type="text/plain")

    @app.get("/whole")
    async def whole() -> PlainTextResponse:
        return PlainTextResponse("".join([chunk async for chunk in paced()]))

    with serve(app, name="wire-test") as server:
        yield server.url


def test_each_chunk_is_recorded_with_its_arrival_time(url: str) -> None:
    rec = watch(f"{url}/stream")
    assert rec.body == b"part 0\npart 1\npart 2\npart 3\n"
    assert len(rec.chunks) == 4
    gaps = [b.at - a.at for a, b in zip(rec.chunks, rec.chunks[1:], strict=False)]
    assert all(gap > 0.08 for gap in gaps), f"chunks were paced 0.15 s apart, measured gaps {gaps}"


def test_a_whole_response_arrives_at_once_after_the_work(url: str) -> None:
    rec = watch(f"{url}/whole")
    assert rec.first_byte > 0.5 and rec.last_byte - rec.first_byte < 0.1


async def test_awatch_records_the_same_as_watch(url: str) -> None:
    rec = await awatch(f"{url}/stream", label="async")
    assert rec.label == "async" and len(rec.chunks) == 4 and rec.status == 200
    assert rec.headers["content-type"].startswith("text/plain")


def test_timeline_draws_one_row_per_recording(url: str) -> None:
    fig = timeline(watch(f"{url}/whole", label="whole"), watch(f"{url}/stream", label="streamed"))
    labels = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert labels == ["streamed", "whole"]  # drawn bottom-up: the first recording on top


def test_pace_divides_by_streamcourse_speed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STREAMCOURSE_SPEED", "20")
    assert pacing.pace(1.0) == pytest.approx(0.05)
    monkeypatch.delenv("STREAMCOURSE_SPEED")
    assert pacing.pace(1.0) == 1.0


@pytest.mark.parametrize("bad", ["fast", "0", "-2"])
def test_a_bad_speed_says_what_to_set(monkeypatch: pytest.MonkeyPatch, bad: str) -> None:
    monkeypatch.setenv("STREAMCOURSE_SPEED", bad)
    with pytest.raises(ValueError, match="STREAMCOURSE_SPEED must be"):
        pacing.pace(1.0)


async def test_awatch_hands_each_chunk_to_on_chunk_as_it_arrives(url: str) -> None:
    seen: list[tuple[float, bytes]] = []
    start = asyncio.get_running_loop().time()
    rec = await awatch(
        f"{url}/stream", on_chunk=lambda c: seen.append((asyncio.get_running_loop().time() - start, c.data))
    )
    assert [data for _, data in seen] == [c.data for c in rec.chunks]
    assert seen[0][0] < seen[-1][0] - 0.2, "the first chunk is handed over long before the last one arrives"
