# rejected by: test_a_rate_limited_model_gives_an_http_error_before_any_stream
# Opens the upstream stream inside the generator: by then 200 is sent, so a 429 can only become an error event.
import openai
from fastapi import FastAPI
from fastapi.sse import EventSourceResponse, ServerSentEvent


def relay_tokens(client):
    app = FastAPI()

    @app.post("/chat", response_class=EventSourceResponse)
    async def chat(body: ChatRequest):
        usage = None
        try:
            stream = await client.chat.completions.create(
                model=body.model,
                messages=[{"role": "user", "content": body.prompt}],
                stream=True,
                stream_options={"include_usage": True},
            )
            async with stream:
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
