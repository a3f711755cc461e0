# rejected by: test_the_stream_announces_its_retry_delay_before_the_first_event
# Known error 10: "the default retry is 3 seconds, so there is no need to send retry:". The spec
# leaves the first delay to each browser (Chromium waits about 3 s, Firefox about 5 s): retry_ms is
# never sent, and clients reconnect on their own schedule.
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

        return EventSourceResponse(stream())

    return app
