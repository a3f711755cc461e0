# rejected by: test_cancelling_by_id_ends_the_stream_with_a_cancelled_event_and_stops_the_model
# Registers each generation and sets its event on cancel — but the loop never
# looks at the event: the cancel answers 200 and the model goes on to the end.
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
        running[generation_id] = asyncio.Event()
        try:
            yield generation_id
        finally:
            running.pop(generation_id, None)

    @app.post("/chat", response_class=EventSourceResponse)
    async def chat(
        stream: Annotated[object, Depends(open_upstream)], generation_id: Annotated[str, Depends(registered)]
    ):
        yield ServerSentEvent(event="start", data={"id": generation_id})
        try:
            async for chunk in stream:
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
