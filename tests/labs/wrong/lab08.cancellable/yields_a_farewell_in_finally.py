# rejected by: test_a_finished_stream_relays_every_token_and_is_billed_once, test_a_client_that_leaves_is_billed_for_what_it_got
# Known error 3: sends a farewell from `finally` — `yield ServerSentEvent(event="bye")` —
# then bills. On a normal end the farewell trails after `done`. When the client has
# gone, the farewell `yield` swallows the cancellation, the generator is parked there
# for good (or Python refuses the `yield` with RuntimeError), and the bill after it
# is never written.
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
            yield ServerSentEvent(event="done", data={"tokens": sent})
        except openai.APIError as exc:
            yield ServerSentEvent(event="error", data={"message": exc.message})
        finally:
            yield ServerSentEvent(event="bye", data={"tokens": sent})  # a farewell nobody can hear
            app.state.billed.append(sent)

    return app
