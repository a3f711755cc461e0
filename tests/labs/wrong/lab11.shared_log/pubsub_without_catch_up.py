# rejected by: test_a_new_client_gets_the_retained_log_then_live_events[shared_log], test_a_reconnect_to_another_worker_resumes_after_last_event_id[shared_log], test_a_client_back_after_trimming_is_told_with_a_reset_event[shared_log]
# Live events over pub/sub (PUBLISH/SUBSCRIBE), the stream only as storage: every worker
# hears every event, but pub/sub has no history, so a new client gets nothing of the
# past and a reconnect loses whatever was published while it was away.
import json
from typing import Annotated

from fastapi import FastAPI, Header, Request
from fastapi.sse import EventSourceResponse, format_sse_event


def make_log_app(redis_url, stream, maxlen=1000):
    app = FastAPI(lifespan=redis_lifespan(redis_url))

    @app.post("/publish")
    async def publish(request: Request):
        text = (await request.body()).decode()
        entry_id = await app.state.redis.xadd(stream, {"data": text}, maxlen=maxlen)
        await app.state.redis.publish(stream, json.dumps([entry_id, text]))
        return {"id": entry_id}

    @app.get("/events")
    async def events(last_event_id: Annotated[str | None, Header()] = None):
        async def live():
            async with app.state.redis.pubsub() as pubsub:
                await pubsub.subscribe(stream)
                async for message in pubsub.listen():
                    if message["type"] == "message":
                        entry_id, text = json.loads(message["data"])
                        yield format_sse_event(data_str=text, id=entry_id)

        return EventSourceResponse(live())

    return app
