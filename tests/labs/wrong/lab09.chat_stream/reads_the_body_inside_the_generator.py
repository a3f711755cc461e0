# rejected by: test_an_invalid_body_is_refused_with_422_before_any_stream
# Known error 14: reads the body with `await request.json()` INSIDE the streaming
# generator. By then the response's disconnect listener has consumed the request
# body: the read finds it empty (JSONDecodeError) after the 200 has gone out, so
# every request, good or bad, gets a stream that breaks off.
from fastapi import Request
from fastapi.responses import StreamingResponse

USAGE = {"prompt_tokens", "completion_tokens", "total_tokens"}


def make_app(client: AsyncOpenAI, *, ping_interval: float = 15.0) -> FastAPI:
    app = FastAPI()
    running: dict[str, asyncio.Event] = {}

    def sse(event: str, data: Any) -> str:
        return f"event: {event}\ndata: {json.dumps(data)}\n\n"

    @app.get("/", response_class=HTMLResponse)
    async def page() -> str:
        return PAGE

    @app.post("/chat")
    async def chat(request: Request) -> StreamingResponse:
        async def events() -> AsyncIterator[str]:
            body = ChatRequest.model_validate(await request.json())  # the body is gone by now
            generation = uuid.uuid4().hex
            running[generation] = asyncio.Event()
            try:
                yield sse("start", {"id": generation})
                stream = await client.chat.completions.create(
                    model=body.model,
                    messages=[m.model_dump() for m in body.messages],
                    stream=True,
                    stream_options={"include_usage": True},
                )
                usage = None
                async with stream:
                    async for chunk in stream:
                        usage = chunk.usage.model_dump(include=USAGE) if chunk.usage else usage
                        for choice in chunk.choices:
                            if choice.delta.content:
                                yield sse("token", {"text": choice.delta.content})
                yield sse("done", {"usage": usage, "finish_reason": "stop"})
            except openai.APIError as exc:
                yield sse("error", {"message": exc.message, "code": exc.code})
            finally:
                running.pop(generation, None)

        headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
        return StreamingResponse(events(), media_type="text/event-stream", headers=headers)

    @app.post("/chat/{generation}/cancel")
    async def cancel(generation: str) -> dict[str, Any]:
        if generation not in running:
            raise HTTPException(404, "unknown generation")
        running[generation].set()
        return {"id": generation, "cancelled": True}

    return app
