# rejected by: test_the_content_type_is_text_event_stream
# A hand-written StreamingResponse without a media type: it goes out with no Content-Type at all,
# and EventSource refuses anything that is not text/event-stream (it never reconnects either).
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

    return StreamingResponse(events(), headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
