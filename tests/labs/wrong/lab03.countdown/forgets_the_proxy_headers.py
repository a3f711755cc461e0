# rejected by: test_caches_and_proxies_are_told_not_to_hold_events
# A hand-written StreamingResponse with the right media type but no Cache-Control or
# X-Accel-Buffering: nginx in front of it would hold the events back.
import asyncio
from typing import Annotated

from fastapi import FastAPI, Query
from fastapi.responses import StreamingResponse

countdown_app = FastAPI()


@countdown_app.get("/countdown")
async def countdown(start: Annotated[int, Query(ge=1, le=100)], interval: float = 1.0):
    async def events():
        for n in range(start, 0, -1):
            yield f"event: tick\nid: {n}\ndata: {n}\n\n"
            await asyncio.sleep(interval)
        yield "event: done\ndata: liftoff\n\n"

    return StreamingResponse(events(), media_type="text/event-stream")
