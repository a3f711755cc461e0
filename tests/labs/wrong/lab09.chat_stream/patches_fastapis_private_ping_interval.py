# rejected by: test_two_apps_each_ping_at_their_own_interval
# Known error 18: no keep-alive of its own; instead it sets FastAPI's private
# ping interval, fastapi.routing._PING_INTERVAL, to ping_interval. One app alone
# pings as asked — but the name is one setting for the whole process (and may
# change in any release): the app made last decides the interval for every app.
import fastapi.routing

USAGE = {"prompt_tokens", "completion_tokens", "total_tokens"}


def make_app(client: AsyncOpenAI, *, ping_interval: float = 15.0) -> FastAPI:
    fastapi.routing._PING_INTERVAL = ping_interval  # a private name, patched process-wide
    app = FastAPI()
    running: dict[str, asyncio.Event] = {}

    async def open_upstream(body: ChatRequest) -> AsyncIterator[AsyncStream[ChatCompletionChunk]]:
        try:
            stream = await client.chat.completions.create(
                model=body.model,
                messages=[m.model_dump() for m in body.messages],
                stream=True,
                stream_options={"include_usage": True},
            )
        except openai.RateLimitError as exc:
            raise HTTPException(429, exc.message) from exc
        except openai.APIError as exc:
            raise HTTPException(502, exc.message) from exc
        async with stream:
            yield stream

    @app.get("/", response_class=HTMLResponse)
    async def page() -> str:
        return PAGE

    @app.post("/chat", response_class=EventSourceResponse)
    async def chat(
        upstream: Annotated[AsyncStream[ChatCompletionChunk], Depends(open_upstream)],
    ) -> AsyncIterator[ServerSentEvent]:
        generation = uuid.uuid4().hex
        stop = asyncio.Event()
        running[generation] = stop
        usage, finish = None, None
        try:
            yield ServerSentEvent(event="start", data={"id": generation})
            async for chunk in upstream:
                if stop.is_set():
                    finish = "cancelled"
                    await upstream.close()
                    break
                usage = chunk.usage.model_dump(include=USAGE) if chunk.usage else usage
                for choice in chunk.choices:
                    if choice.delta.content:
                        yield ServerSentEvent(event="token", data={"text": choice.delta.content})
                    finish = choice.finish_reason or finish
            yield ServerSentEvent(event="done", data={"usage": usage, "finish_reason": finish})
        except openai.APIError as exc:
            yield ServerSentEvent(event="error", data={"message": exc.message, "code": exc.code})
        finally:
            running.pop(generation, None)
            await upstream.close()

    @app.post("/chat/{generation}/cancel")
    async def cancel(generation: str) -> dict[str, Any]:
        if generation not in running:
            raise HTTPException(404, "unknown generation")
        running[generation].set()
        return {"id": generation, "cancelled": True}

    return app
