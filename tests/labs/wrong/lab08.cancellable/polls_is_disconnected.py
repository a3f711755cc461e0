# rejected by: test_a_client_that_leaves_while_the_model_is_silent_is_billed_and_the_model_stops
# Known error 11: cleans up only when request.is_disconnected() says so. A generator waiting for a silent
# model never gets to that check — the server cancels it at its await, and the bill is never written.
from typing import Annotated

import openai
from fastapi import Depends, FastAPI, Request
from fastapi.sse import EventSourceResponse, ServerSentEvent


def cancellable(client):
    app = FastAPI()
    app.state.billed = []
    open_upstream = upstream_opener(client)

    @app.post("/chat", response_class=EventSourceResponse)
    async def chat(request: Request, stream: Annotated[object, Depends(open_upstream)]):
        sent = 0
        try:
            async for chunk in stream:
                if await request.is_disconnected():
                    await stream.close()
                    app.state.billed.append(sent)
                    return
                for text in token_texts(chunk):
                    sent += 1
                    yield ServerSentEvent(event="token", data={"text": text})
        except openai.APIError as exc:
            yield ServerSentEvent(event="error", data={"message": exc.message})
            app.state.billed.append(sent)
            return
        yield ServerSentEvent(event="done", data={"tokens": sent})
        app.state.billed.append(sent)

    return app
