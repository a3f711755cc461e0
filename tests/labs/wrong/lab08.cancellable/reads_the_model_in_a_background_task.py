# rejected by: test_the_model_stops_within_200ms_of_the_client_leaving, test_a_client_that_leaves_while_the_model_is_silent_is_billed_and_the_model_stops
# The source material's queue version: a background task opens the model's stream
# itself and feeds a queue, and nobody cancels it. The client leaves, the generator
# is cancelled and bills — but the task keeps the model generating to the end.
import asyncio
from typing import Annotated

from fastapi import FastAPI
from fastapi.sse import EventSourceResponse, ServerSentEvent


def cancellable(client):
    app = FastAPI()
    app.state.billed = []
    app.state.tasks = set()

    @app.post("/chat", response_class=EventSourceResponse)
    async def chat(body: ChatRequest):
        queue: asyncio.Queue = asyncio.Queue()

        async def pump() -> None:
            stream = await client.chat.completions.create(
                model=body.model, messages=[{"role": "user", "content": body.prompt}], stream=True
            )
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
