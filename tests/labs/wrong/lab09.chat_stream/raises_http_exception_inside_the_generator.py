# rejected by: test_a_rate_limited_model_gives_an_http_error_not_a_stream
# Known errors 12 and 15: opens the model's stream INSIDE the SSE generator and
# turns a rate limit into HTTPException(429) there. The 200 and the event-stream
# headers are already on the wire when the generator runs, so the client sees a
# 200 stream that breaks off — never a 429.

USAGE = {"prompt_tokens", "completion_tokens", "total_tokens"}


def make_app(client: AsyncOpenAI, *, ping_interval: float = 15.0) -> FastAPI:
    app = FastAPI()
    running: dict[str, asyncio.Event] = {}

    @app.get("/", response_class=HTMLResponse)
    async def page() -> str:
        return PAGE

    @app.post("/chat", response_class=EventSourceResponse)
    async def chat(body: ChatRequest) -> AsyncIterator[ServerSentEvent]:
        try:
            upstream = await client.chat.completions.create(
                model=body.model,
                messages=[m.model_dump() for m in body.messages],
                stream=True,
                stream_options={"include_usage": True},
            )
        except openai.RateLimitError as exc:
            raise HTTPException(429, exc.message) from exc  # too late: the status line has gone out
        generation = uuid.uuid4().hex
        stop = asyncio.Event()
        running[generation] = stop
        stopping = asyncio.ensure_future(stop.wait())
        chunks = aiter(upstream)
        pending = None
        usage, finish = None, None
        try:
            yield ServerSentEvent(event="start", data={"id": generation})
            while True:
                if pending is None:
                    pending = asyncio.ensure_future(anext(chunks, None))
                ready, _ = await asyncio.wait(
                    {pending, stopping}, timeout=ping_interval, return_when=asyncio.FIRST_COMPLETED
                )
                if stopping in ready:
                    finish = "cancelled"
                    break
                if pending not in ready:
                    yield ServerSentEvent(comment="ping")
                    continue
                chunk, pending = pending.result(), None
                if chunk is None:
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
            stopping.cancel()
            if pending is not None:
                pending.cancel()
            await upstream.close()

    @app.post("/chat/{generation}/cancel")
    async def cancel(generation: str) -> dict[str, Any]:
        if generation not in running:
            raise HTTPException(404, "unknown generation")
        running[generation].set()
        return {"id": generation, "cancelled": True}

    return app
