# Reads the model in a background task feeding a queue, and never cancels it: the client leaves,
# the generator is cancelled and bills — but the task keeps the model generating to the end.
import asyncio
from typing import Annotated

from fastapi import Depends, FastAPI
from fastapi.sse import EventSourceResponse, ServerSentEvent


def cancellable(client):
    app = FastAPI()
    app.state.billed = []
    app.state.tasks = set()
    open_upstream = upstream_opener(client)

    @app.post("/chat", response_class=EventSourceResponse)
    async def chat(stream: Annotated[object, Depends(open_upstream)]):
        queue: asyncio.Queue = asyncio.Queue()

        async def pump() -> None:
            async for chunk in stream:
                for text in token_texts(chunk):
                    await queue.put(text)
            await queue.put(None)

        task = asyncio.create_task(pump())
        app.state.tasks.add(task)
        sent = 0
        try:
            while (text := await queue.get()) is not None:
                sent += 1
                yield ServerSentEvent(event="token", data={"text": text})
            yield ServerSentEvent(event="done", data={"tokens": sent})
        finally:
            app.state.billed.append(sent)

    return app
