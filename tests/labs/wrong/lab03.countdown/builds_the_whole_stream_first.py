# rejected by: test_the_first_event_arrives_before_the_stream_ends
# Builds every event (sleeping in between) and returns one Response at the end: the right bytes
# and headers, but the client sees nothing until the countdown is over.
import asyncio
from typing import Annotated

from fastapi import FastAPI, Query
from fastapi.responses import Response

countdown_app = FastAPI()


@countdown_app.get("/countdown")
async def countdown(start: Annotated[int, Query(ge=1, le=100)], interval: float = 1.0):
    body = ""
    for n in range(start, 0, -1):
        body += f"event: tick\nid: {n}\ndata: {n}\n\n"
        await asyncio.sleep(interval)
    body += "event: done\ndata: liftoff\n\n"
    return Response(
        body, media_type="text/event-stream", headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    )
