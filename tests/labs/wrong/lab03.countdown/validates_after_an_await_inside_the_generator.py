# rejected by: test_a_bad_start_is_refused_before_streaming
# Known error 21: validates `start` inside the SSE generator, after an await (here a "lookup"). FastAPI
# runs that generator in a producer task started before the response exists; when it raises there,
# the stream simply ends: the client gets a complete, EMPTY 200 (EventSource reconnects for ever).
import asyncio

from fastapi import FastAPI, HTTPException
from fastapi.sse import EventSourceResponse, ServerSentEvent

countdown_app = FastAPI()


@countdown_app.get("/countdown", response_class=EventSourceResponse)
async def countdown(start: str, interval: float = 1.0):
    await asyncio.sleep(0)  # e.g. looking the countdown up in a database
    if not start.isdigit() or not 1 <= int(start) <= 100:
        raise HTTPException(422, "start must be a whole number from 1 to 100")
    for n in range(int(start), 0, -1):
        yield ServerSentEvent(raw_data=str(n), event="tick", id=str(n))
        await asyncio.sleep(interval)
    yield ServerSentEvent(raw_data="liftoff", event="done")
