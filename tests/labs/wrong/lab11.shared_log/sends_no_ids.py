# rejected by: test_every_client_on_every_worker_gets_every_event_once_in_order[shared_log], test_a_reconnect_to_another_worker_resumes_after_last_event_id[shared_log]
# Streams the data without `id:` fields: it looks right in a browser, but a reconnecting
# EventSource has no Last-Event-ID to send, so it starts over from the beginning.
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
        if (refusal := bad_last_event_id(last_event_id)) is not None:
            return refusal

        async def entries():
            last = last_event_id or "0-0"
            while True:
                for _name, found in await app.state.redis.xread({stream: last}, block=15_000, count=100):
                    for entry_id, fields in found:
                        yield format_sse_event(data_str=fields["data"])
                        last = entry_id

        return EventSourceResponse(entries())

    return app
