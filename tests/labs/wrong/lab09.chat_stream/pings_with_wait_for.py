# rejected by: test_tokens_slower_than_the_ping_interval_are_all_delivered
# Known error 5: pings with `asyncio.wait_for(anext(chunks), ping_interval)`.
# When the time runs out, wait_for CANCELS the pending read: the CancelledError
# lands inside the SDK's stream generator, which closes the upstream response.
# The next read finds the stream finished — the reply is cut short at the first ping.

USAGE = {"prompt_tokens", "completion_tokens", "total_tokens"}


def make_app(client: AsyncOpenAI, *, ping_interval: float = 15.0) -> FastAPI:
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
        chunks = aiter(upstream)
        usage, finish = None, None
        try:
            yield ServerSentEvent(event="start", data={"id": generation})
            while not stop.is_set():
                try:
                    chunk = await asyncio.wait_for(anext(chunks), ping_interval)  # cancels the read on timeout
                except TimeoutError:
                    yield ServerSentEvent(comment="ping")
                    continue
                except StopAsyncIteration:
                    break
                usage = chunk.usage.model_dump(include=USAGE) if chunk.usage else usage
                for choice in chunk.choices:
                    if choice.delta.content:
                        yield ServerSentEvent(event="token", data={"text": choice.delta.content})
                    finish = choice.finish_reason or finish
            else:
                finish = "cancelled"
                await upstream.close()
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
