# rejected by: test_publish_appends_to_the_stream_and_answers_its_id[shared_log], test_every_client_on_every_worker_gets_every_event_once_in_order[shared_log]
# The one-process broadcast: a list of events and a queue per client, in module state.
# Correct with one worker; with several, each worker has its own list, so a client only
# gets what was published to the worker it happens to be connected to.
import asyncio
from typing import Annotated

from fastapi import FastAPI, Header, Request
from fastapi.sse import EventSourceResponse, format_sse_event


def make_log_app(redis_url, stream, maxlen=1000):
    app = FastAPI()
    log: list[tuple[str, str]] = []
    queues: set[asyncio.Queue] = set()

    @app.post("/publish")
    async def publish(request: Request):
        entry = (f"{len(log) + 1}-0", (await request.body()).decode())
        log.append(entry)
        del log[:-maxlen]
        for queue in queues:
            queue.put_nowait(entry)
        return {"id": entry[0]}

    @app.get("/events")
    async def events(last_event_id: Annotated[str | None, Header()] = None):
        async def stream_events():
            queue: asyncio.Queue = asyncio.Queue()
            queues.add(queue)
            try:
                for entry_id, text in list(log):
                    yield format_sse_event(data_str=text, id=entry_id)
                while True:
                    entry_id, text = await queue.get()
                    yield format_sse_event(data_str=text, id=entry_id)
            finally:
                queues.discard(queue)

        return EventSourceResponse(stream_events())

    return app
