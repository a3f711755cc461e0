# rejected by: test_a_reconnect_to_another_worker_resumes_after_last_event_id[fan_out], test_a_client_still_within_the_log_gets_no_reset[fan_out]
# One reader per worker and bounded buffers — but the catch-up is XRANGE <Last-Event-ID> +,
# whose start is inclusive: a client that comes back gets its last event a second time.
import asyncio
from contextlib import asynccontextmanager
from typing import Annotated

import redis.asyncio as aioredis
from fastapi import FastAPI, Header, Request
from fastapi.sse import EventSourceResponse, format_sse_event


def make_fan_out_app(redis_url, stream, maxlen=1000, buffer=100):
    queues: set[asyncio.Queue] = set()

    async def read_for_everyone(r):
        newest = await r.xrevrange(stream, count=1)
        last = newest[0][0] if newest else "0-0"
        while True:
            for _name, found in await r.xread({stream: last}, block=15_000, count=buffer):
                last = found[-1][0]
                for queue in queues:
                    for entry in found:
                        if not queue.full():
                            queue.put_nowait(entry)

    @asynccontextmanager
    async def lifespan(app):
        app.state.redis = aioredis.Redis.from_url(redis_url, decode_responses=True)
        reader = asyncio.create_task(read_for_everyone(app.state.redis))
        yield
        reader.cancel()
        await app.state.redis.aclose()

    app = FastAPI(lifespan=lifespan)

    @app.post("/publish")
    async def publish(request: Request):
        text = (await request.body()).decode()
        return {"id": await app.state.redis.xadd(stream, {"data": text}, maxlen=maxlen)}

    @app.get("/events")
    async def events(last_event_id: Annotated[str | None, Header()] = None):
        if (refusal := bad_last_event_id(last_event_id)) is not None:
            return refusal
        r = app.state.redis

        async def entries():
            queue: asyncio.Queue = asyncio.Queue(maxsize=buffer)
            queues.add(queue)
            try:
                sent = last_event_id or "0-0"
                first = await r.xrange(stream, "-", "+", count=1)
                if last_event_id and first and id_key(first[0][0]) > id_key(sent):
                    yield format_sse_event(event="reset", data_str="trimmed")
                sent = "0-0"
                for entry_id, fields in await r.xrange(stream, last_event_id or "-", "+"):
                    yield format_sse_event(data_str=fields["data"], id=entry_id)
                    sent = entry_id
                while True:
                    entry_id, fields = await queue.get()
                    if id_key(entry_id) > id_key(sent):
                        yield format_sse_event(data_str=fields["data"], id=entry_id)
                        sent = entry_id
            finally:
                queues.discard(queue)

        return EventSourceResponse(entries())

    return app
