# rejected by: test_the_stream_is_capped_with_maxlen[shared_log]
# XADD without MAXLEN: the log grows for ever (Redis keeps every entry in memory).
from typing import Annotated

from fastapi import FastAPI, Header, Request
from fastapi.sse import EventSourceResponse, format_sse_event


def make_log_app(redis_url, stream, maxlen=1000):
    app = FastAPI(lifespan=redis_lifespan(redis_url))

    @app.post("/publish")
    async def publish(request: Request):
        text = (await request.body()).decode()
        return {"id": await app.state.redis.xadd(stream, {"data": text})}

    @app.get("/events")
    async def events(last_event_id: Annotated[str | None, Header()] = None):
        if (refusal := bad_last_event_id(last_event_id)) is not None:
            return refusal

        async def entries():
            first = await app.state.redis.xrange(stream, "-", "+", count=1)
            if last_event_id and first and id_key(first[0][0]) > id_key(last_event_id):
                yield format_sse_event(event="reset", data_str="trimmed")
            last = last_event_id or "0-0"
            while True:
                for _name, found in await app.state.redis.xread({stream: last}, block=15_000, count=100):
                    for entry_id, fields in found:
                        yield format_sse_event(data_str=fields["data"], id=entry_id)
                        last = entry_id

        return EventSourceResponse(entries())

    return app
