# rejected by: test_it_is_served_as_an_event_stream
# Streams the right events as text/plain: an EventSource fails the connection at once (wrong
# Content-Type) and never reconnects, so not one event reaches the page.
import bisect

from fastapi import FastAPI, Header
from fastapi.responses import PlainTextResponse, Response, StreamingResponse


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
            yield f"retry: {retry_ms}\n\n"
            for event in log[start:]:
                yield f"id: {event.id}\ndata: {event.data}\n\n"

        return StreamingResponse(stream(), media_type="text/plain")

    return app
