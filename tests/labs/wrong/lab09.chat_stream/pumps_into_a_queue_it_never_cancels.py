# rejected by: test_a_client_that_leaves_closes_the_model_stream
# Known error 5, the "queue version": a background task pumps the model's chunks
# into a queue, and the generator waits on the queue with a timeout (safe: a
# cancelled queue.get() loses nothing). But nobody cancels the pump when the
# client leaves or the user cancels: the model goes on generating for no one.

USAGE = {"prompt_tokens", "completion_tokens", "total_tokens"}


def make_app(client: AsyncOpenAI, *, ping_interval: float = 15.0) -> FastAPI:
    app = FastAPI()
    running: dict[str, asyncio.Event] = {}
    END = object()

    async def open_upstream(body: ChatRequest) -> AsyncStream[ChatCompletionChunk]:
        try:
            return await client.chat.completions.create(
                model=body.model,
                messages=[m.model_dump() for m in body.messages],
                stream=True,
                stream_options={"include_usage": True},
            )
        except openai.RateLimitError as exc:
            raise HTTPException(429, exc.message) from exc
        except openai.APIError as exc:
            raise HTTPException(502, exc.message) from exc

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
        queue: asyncio.Queue[Any] = asyncio.Queue()

        async def pump() -> None:
            try:
                async for chunk in upstream:
                    await queue.put(chunk)
            except openai.APIError as exc:
                await queue.put(exc)
            await queue.put(END)

        asyncio.get_running_loop().create_task(pump())  # never cancelled
        usage, finish = None, None
        try:
            yield ServerSentEvent(event="start", data={"id": generation})
            while not stop.is_set():
                try:
                    item = await asyncio.wait_for(queue.get(), ping_interval)
                except TimeoutError:
                    yield ServerSentEvent(comment="ping")
                    continue
                if item is END:
                    break
                if isinstance(item, openai.APIError):
                    yield ServerSentEvent(event="error", data={"message": item.message, "code": item.code})
                    return
                usage = item.usage.model_dump(include=USAGE) if item.usage else usage
                for choice in item.choices:
                    if choice.delta.content:
                        yield ServerSentEvent(event="token", data={"text": choice.delta.content})
                    finish = choice.finish_reason or finish
            else:
                finish = "cancelled"
            yield ServerSentEvent(event="done", data={"usage": usage, "finish_reason": finish})
        finally:
            running.pop(generation, None)

    @app.post("/chat/{generation}/cancel")
    async def cancel(generation: str) -> dict[str, Any]:
        if generation not in running:
            raise HTTPException(404, "unknown generation")
        running[generation].set()
        return {"id": generation, "cancelled": True}

    return app
