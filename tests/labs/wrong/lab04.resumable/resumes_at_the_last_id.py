# rejected by: test_it_resumes_after_the_last_event_id, test_random_drops_and_reconnects_deliver_every_event_exactly_once
# Resumes AT Last-Event-ID instead of after it (>= instead of >): the client gets that event twice.
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
            start = bisect.bisect_left(log, int(last_event_id), key=lambda e: e.id)
        if start >= len(log):
            return Response(status_code=204)

        async def stream():
            yield format_sse_event(retry=retry_ms)
            for event in log[start:]:
                yield format_sse_event(data_str=event.data, id=str(event.id))

        return EventSourceResponse(stream())

    return app
