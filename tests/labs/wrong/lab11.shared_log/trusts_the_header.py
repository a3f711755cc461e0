# rejected by: test_a_garbage_last_event_id_gets_400_not_a_crash[shared_log]
# Hands Last-Event-ID to Redis unchecked: "abc" makes XREAD fail inside the stream, after
# the 200 is sent — the client sees a broken stream (and reconnects for ever), never a 400.
from typing import Annotated

from fastapi import FastAPI, Header, Request
from fastapi.sse import EventSourceResponse, format_sse_event


def make_log_app(redis_url, stream, maxlen=1000):
    app = FastAPI(lifespan=redis_lifespan(redis_url))

    @app.post("/publish")
    async def publish(request: Request):
        text = (await request.body()).decode()
        return {"id": await app.state.redis.xadd(stream, {"data": text}, maxlen=maxlen)}

    @app.get("/events")
    async def events(last_event_id: Annotated[str | None, Header()] = None):
        async def entries():
            last = last_event_id or "0-0"
            first = await app.state.redis.xrange(stream, "-", "+", count=1)
            if last_event_id and first and first[0][0] > last_event_id:
                yield format_sse_event(event="reset", data_str="trimmed")
            while True:
                for _name, found in await app.state.redis.xread({stream: last}, block=15_000, count=100):
                    for entry_id, fields in found:
                        yield format_sse_event(data_str=fields["data"], id=entry_id)
                        last = entry_id

        return EventSourceResponse(entries())

    return app
