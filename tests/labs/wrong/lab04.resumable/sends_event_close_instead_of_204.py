# rejected by: test_a_client_that_has_every_event_gets_204, test_an_id_from_the_future_gets_204_not_a_replay
# Known error 2: believes a browser stops reconnecting after `event: close`. It ends every stream
# with that event and answers a client that has everything with a 200 stream holding only the close
# event, never 204 — so EventSource reconnects for ever, and the close event arrives as data.
import bisect

from fastapi import FastAPI, Header
from fastapi.responses import PlainTextResponse, Response
from fastapi.sse import EventSourceResponse, format_sse_event


def make_app(log, retry_ms=1000):
    app = FastAPI()

    @app.get("/events")
    async def events(last_event_id: str | None = Header(None)) -> Response:
        start = 0
        if last_event_id is not None:
            if not (last_event_id.isascii() and last_event_id.isdigit()):
                return PlainTextResponse("bad id\n", status_code=400)
            start = bisect.bisect_right(log, int(last_event_id), key=lambda e: e.id)

        async def stream():
            yield format_sse_event(retry=retry_ms)
            for event in log[start:]:
                yield format_sse_event(data_str=event.data, id=str(event.id))
            yield format_sse_event(event="close", data_str="bye")  # "the browser will not reconnect now"

        return EventSourceResponse(stream())

    return app
