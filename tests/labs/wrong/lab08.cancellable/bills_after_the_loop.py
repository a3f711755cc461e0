# rejected by: test_a_client_that_leaves_is_billed_for_what_it_got, test_a_client_that_leaves_while_the_model_is_silent_is_billed_and_the_model_stops
# Cleanup after the loop instead of in `finally`: a cancelled stream never gets there, so it is never billed.
from typing import Annotated

import openai
from fastapi import Depends, FastAPI
from fastapi.sse import EventSourceResponse, ServerSentEvent


def cancellable(client):
    app = FastAPI()
    app.state.billed = []
    open_upstream = upstream_opener(client)

    @app.post("/chat", response_class=EventSourceResponse)
    async def chat(stream: Annotated[object, Depends(open_upstream)]):
        sent = 0
        try:
            async for chunk in stream:
                for text in token_texts(chunk):
                    sent += 1
                    yield ServerSentEvent(event="token", data={"text": text})
        except openai.APIError as exc:
            yield ServerSentEvent(event="error", data={"message": exc.message})
        else:
            yield ServerSentEvent(event="done", data={"tokens": sent})
        await stream.close()
        app.state.billed.append(sent)

    return app
