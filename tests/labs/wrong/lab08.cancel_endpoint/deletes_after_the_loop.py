# rejected by: test_the_registry_is_empty_after_100_mixed_generations
# Known error 7: `del registry[id]` after the loop. A stream that is abandoned by its client, cancelled or
# fails leaves the loop another way, and its entry stays in the registry for ever.
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

    @app.post("/chat", response_class=EventSourceResponse)
    async def chat(stream: Annotated[object, Depends(open_upstream)]):
        generation_id = uuid.uuid4().hex
        cancelled = running[generation_id] = asyncio.Event()
        yield ServerSentEvent(event="start", data={"id": generation_id})
        try:
            async for chunk in stream:
                if cancelled.is_set():
                    await stream.close()
                    yield ServerSentEvent(event="cancelled", data={"id": generation_id})
                    return
                for text in token_texts(chunk):
                    yield ServerSentEvent(event="token", data={"text": text})
        except openai.APIError as exc:
            yield ServerSentEvent(event="error", data={"message": exc.message})
            return
        yield ServerSentEvent(event="done", data={"id": generation_id})
        del running[generation_id]

    @app.post("/chat/{generation_id}/cancel")
    async def cancel(generation_id: str):
        if generation_id not in running:
            raise HTTPException(404, f"no running generation with id {generation_id!r}")
        running[generation_id].set()
        return {"cancelled": generation_id}

    return app
