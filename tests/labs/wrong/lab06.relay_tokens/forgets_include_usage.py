# rejected by: test_the_stream_ends_with_one_done_event_carrying_usage
# Never asks for usage (no stream_options={"include_usage": True}): the done event has nothing to carry.
from typing import Annotated

import openai
from fastapi import Depends, FastAPI, HTTPException
from fastapi.sse import EventSourceResponse, ServerSentEvent


def relay_tokens(client):
    app = FastAPI()

    async def open_upstream(body: ChatRequest):
        try:
            return await client.chat.completions.create(
                model=body.model, messages=[{"role": "user", "content": body.prompt}], stream=True
            )
        except openai.RateLimitError as exc:
            raise HTTPException(429, exc.message) from exc
        except openai.APIError as exc:
            raise HTTPException(502, exc.message) from exc

    @app.post("/chat", response_class=EventSourceResponse)
    async def chat(stream: Annotated[object, Depends(open_upstream)]):
        usage = None
        try:
            async for chunk in stream:
                if chunk.usage is not None:
                    usage = chunk.usage.model_dump()
                for choice in chunk.choices:
                    if choice.delta.content:
                        yield ServerSentEvent(event="token", data={"text": choice.delta.content})
        except openai.APIError as exc:
            yield ServerSentEvent(event="error", data={"message": exc.message})
            return
        yield ServerSentEvent(event="done", data={"usage": usage})

    return app
