# rejected by: test_an_unknown_id_gets_a_404_that_names_it
# Answers 200 {"cancelled": false} for an id it does not know: the caller cannot tell a typo from success.
import asyncio
import uuid
from typing import Annotated

import openai
from fastapi import Depends, FastAPI
from fastapi.sse import EventSourceResponse, ServerSentEvent


def cancel_endpoint(client):
    app = FastAPI()
    app.state.running = {}
    running = app.state.running
    open_upstream = upstream_opener(client)

    @app.post("/chat", response_class=EventSourceResponse)
    async def chat(stream: Annotated[object, Depends(open_upstream)]):
        generation_id = uuid.uuid4().hex
        cancelled = running[generation_id] = asyncio.Event()
        try:
            yield ServerSentEvent(event="start", data={"id": generation_id})
            async with stream:
                async for chunk in stream:
                    if cancelled.is_set():
                        yield ServerSentEvent(event="cancelled", data={"id": generation_id})
                        return
                    for text in token_texts(chunk):
                        yield ServerSentEvent(event="token", data={"text": text})
            yield ServerSentEvent(event="done", data={"id": generation_id})
        except openai.APIError as exc:
            yield ServerSentEvent(event="error", data={"message": exc.message})
        finally:
            running.pop(generation_id, None)

    @app.post("/chat/{generation_id}/cancel")
    async def cancel(generation_id: str):
        if generation_id not in running:
            return {"cancelled": False}
        running[generation_id].set()
        return {"cancelled": generation_id}

    return app
