# rejected by: test_each_token_is_relayed_as_soon_as_it_arrives
# Reads the whole reply before sending anything: right events, but the user waits for the last token.
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
        chunks = []
        try:
            async for chunk in stream:
                chunks.append(chunk)
        except openai.APIError as exc:
            error = exc.message
        else:
            error = None
        usage = None
        for chunk in chunks:
            if chunk.usage is not None:
                usage = chunk.usage.model_dump()
            for choice in chunk.choices:
                if choice.delta.content:
                    yield ServerSentEvent(event="token", data={"text": choice.delta.content})
        if error:
            yield ServerSentEvent(event="error", data={"message": error})
            return
        yield ServerSentEvent(event="done", data={"usage": usage})

    return app
