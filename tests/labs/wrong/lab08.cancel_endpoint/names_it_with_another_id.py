# rejected by: test_the_stream_starts_with_an_id_that_is_in_the_registry_while_it_runs
# Makes a fresh uuid for the start event instead of sending the id it registered:
# the client is told a name the registry has never heard of, so nobody can cancel it.
import asyncio
import uuid
from typing import Annotated

import openai
from fastapi import Depends, FastAPI, HTTPException
from fastapi.sse import EventSourceResponse, ServerSentEvent


def cancel_endpoint(client):
    app = FastAPI()
    app.state.running = {}
    running = app.state.running
    open_upstream = upstream_opener(client)

    async def registered():
        generation_id = uuid.uuid4().hex
        cancelled = running[generation_id] = asyncio.Event()
        try:
            yield cancelled
        finally:
            running.pop(generation_id, None)

    @app.post("/chat", response_class=EventSourceResponse)
    async def chat(
        stream: Annotated[object, Depends(open_upstream)], cancelled: Annotated[asyncio.Event, Depends(registered)]
    ):
        generation_id = uuid.uuid4().hex  # not the id it registered
        yield ServerSentEvent(event="start", data={"id": generation_id})
        try:
            async for chunk in stream:
                if cancelled.is_set():
                    yield ServerSentEvent(event="cancelled", data={"id": generation_id})
                    return
                for text in token_texts(chunk):
                    yield ServerSentEvent(event="token", data={"text": text})
            yield ServerSentEvent(event="done", data={"id": generation_id})
        except openai.APIError as exc:
            yield ServerSentEvent(event="error", data={"message": exc.message})

    @app.post("/chat/{generation_id}/cancel")
    async def cancel(generation_id: str):
        if generation_id not in running:
            raise HTTPException(404, f"no running generation with id {generation_id!r}")
        running[generation_id].set()
        return {"cancelled": generation_id}

    return app
