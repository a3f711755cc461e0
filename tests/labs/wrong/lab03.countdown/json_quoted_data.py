# rejected by: test_countdown_streams_ticks_then_done, test_httpx_sse_reads_the_countdown
# Uses ServerSentEvent(data=...) for text: FastAPI JSON-encodes `data`, so the strings go out
# with quotes ('data: "3"', 'data: "liftoff"'). `raw_data` sends text as it is.
import asyncio
from typing import Annotated

from fastapi import FastAPI, Query
from fastapi.sse import EventSourceResponse, ServerSentEvent

countdown_app = FastAPI()


@countdown_app.get("/countdown", response_class=EventSourceResponse)
async def countdown(start: Annotated[int, Query(ge=1, le=100)], interval: float = 1.0):
    for n in range(start, 0, -1):
        yield ServerSentEvent(data=str(n), event="tick", id=str(n))
        await asyncio.sleep(interval)
    yield ServerSentEvent(data="liftoff", event="done")
