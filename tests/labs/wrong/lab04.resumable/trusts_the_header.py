# rejected by: test_a_garbage_id_gets_400_not_a_crash_or_replay
# Converts the header with int() and never checks it: "abc" crashes the endpoint (500),
# and "-3" replays the whole log.
import bisect

from fastapi import FastAPI, Header
from fastapi.responses import Response
from fastapi.sse import EventSourceResponse, format_sse_event


def make_app(log, retry_ms=1000):
    app = FastAPI()

    @app.get("/events")
    async def events(last_event_id: str | None = Header(None)) -> Response:
        after = int(last_event_id) if last_event_id is not None else -1
        start = bisect.bisect_right(log, after, key=lambda e: e.id)
        if start >= len(log):
            return Response(status_code=204)

        async def stream():
            yield format_sse_event(retry=retry_ms)
            for event in log[start:]:
                yield format_sse_event(data_str=event.data, id=str(event.id))

        return EventSourceResponse(stream())

    return app
