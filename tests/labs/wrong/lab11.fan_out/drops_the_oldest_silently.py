# rejected by: test_a_client_whose_buffer_overflows_is_disconnected_and_catches_up_from_the_log
# A bounded buffer that silently drops the oldest entries (deque(maxlen=...)) when a
# client falls behind: memory is bounded and nobody stalls, but the slow client gets a
# gap it is never told about, and it never reconnects to fill it from the log.
import asyncio
from collections import deque
from contextlib import asynccontextmanager
from typing import Annotated

import redis.asyncio as aioredis
from fastapi import FastAPI, Header, Request
from fastapi.sse import EventSourceResponse, format_sse_event


def make_fan_out_app(redis_url, stream, maxlen=1000, buffer=100):
    queues: set[Buffer] = set()

    class Buffer:
        def __init__(self):
            self.entries, self.ready = deque(maxlen=buffer), asyncio.Event()

        def put_nowait(self, entry):
            self.entries.append(entry)  # a full deque forgets its oldest entry
            self.ready.set()

        async def get(self):
            while not self.entries:
                self.ready.clear()
                await self.ready.wait()
            return self.entries.popleft()

    async def read_for_everyone(r):
        newest = await r.xrevrange(stream, count=1)
        last = newest[0][0] if newest else "0-0"
        while True:
            for _name, found in await r.xread({stream: last}, block=15_000, count=buffer):
                last = found[-1][0]
                for queue in queues:
                    for entry in found:
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
            queue = Buffer()
            queues.add(queue)
            try:
                sent = last_event_id or "0-0"
                first = await r.xrange(stream, "-", "+", count=1)
                if last_event_id and first and id_key(first[0][0]) > id_key(sent):
                    yield format_sse_event(event="reset", data_str="trimmed")
                for entry_id, fields in await r.xrange(stream, f"({sent}" if last_event_id else "-", "+"):
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
