# rejected by: test_the_stream_announces_its_retry_delay_before_the_first_event
# Sends the right retry: value, but only after the last event: a client whose connection drops
# before the end has never heard it, and waits whatever its browser picks.
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
        if start >= len(log):
            return Response(status_code=204)

        async def stream():
            for event in log[start:]:
                yield format_sse_event(data_str=event.data, id=str(event.id))
            yield format_sse_event(retry=retry_ms)

        return EventSourceResponse(stream())

    return app
