# rejected by: test_a_new_client_gets_every_event_with_its_id, test_random_drops_and_reconnects_deliver_every_event_exactly_once
# Resumes correctly on the server, but never sends `id:` — so a client has no Last-Event-ID
# to send back, and every reconnect starts from the beginning.
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
            yield format_sse_event(retry=retry_ms)
            for event in log[start:]:
                yield format_sse_event(data_str=event.data)

        return EventSourceResponse(stream())

    return app
