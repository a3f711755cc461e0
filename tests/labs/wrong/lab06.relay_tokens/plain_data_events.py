# rejected by: test_tokens_arrive_as_token_events_that_join_to_the_reply
# Sends each token as a plain `data:` line (an unnamed "message" event) with no JSON: not the agreed token events.
from typing import Annotated

import openai
from fastapi import Depends, FastAPI, HTTPException
from fastapi.sse import EventSourceResponse, ServerSentEvent


def relay_tokens(client):
    app = FastAPI()

    async def open_upstream(body: ChatRequest):
        try:
            return await client.chat.completions.create(
                model=body.model,
                messages=[{"role": "user", "content": body.prompt}],
                stream=True,
                stream_options={"include_usage": True},
            )
        except openai.RateLimitError as exc:
            raise HTTPException(429, exc.message) from exc
        except openai.APIError as exc:
            raise HTTPException(502, exc.message) from exc

    @app.post("/chat", response_class=EventSourceResponse)
    async def chat(stream: Annotated[object, Depends(open_upstream)]):
        try:
            async for chunk in stream:
                for choice in chunk.choices:
                    if choice.delta.content:
                        yield ServerSentEvent(raw_data=choice.delta.content)
        except openai.APIError as exc:
            yield ServerSentEvent(event="error", data={"message": exc.message})

    return app
