# rejected by: test_a_bad_start_is_refused_before_streaming
# Known errors 15 and 21: validates `start` inside the SSE generator. FastAPI runs that generator in a
# producer task it starts before the response exists, and wraps it in a 200 event stream: the
# HTTPException can no longer become a 422 — the client gets "200, then the connection drops".
import asyncio

from fastapi import FastAPI, HTTPException
from fastapi.sse import EventSourceResponse, ServerSentEvent

countdown_app = FastAPI()


@countdown_app.get("/countdown", response_class=EventSourceResponse)
async def countdown(start: str, interval: float = 1.0):
    if not start.isdigit() or not 1 <= int(start) <= 100:
        raise HTTPException(422, "start must be a whole number from 1 to 100")
    for n in range(int(start), 0, -1):
        yield ServerSentEvent(raw_data=str(n), event="tick", id=str(n))
        await asyncio.sleep(interval)
    yield ServerSentEvent(raw_data="liftoff", event="done")
