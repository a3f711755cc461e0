# rejected by: test_the_stream_ends_with_one_done_event_carrying_usage
# Known error 6: reads chunk.choices[0] on every chunk — the usage chunk has EMPTY choices, so it raises IndexError.
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
        usage = None
        try:
            async for chunk in stream:
                delta = chunk.choices[0].delta
                if delta.content:
                    yield ServerSentEvent(event="token", data={"text": delta.content})
                usage = chunk.usage
        except openai.APIError as exc:
            yield ServerSentEvent(event="error", data={"message": exc.message})
            return
        yield ServerSentEvent(event="done", data={"usage": usage.model_dump() if usage else None})

    return app
