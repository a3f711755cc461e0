# rejected by: test_an_id_missing_from_the_log_resumes_after_it_without_replay, test_an_id_from_the_future_gets_204_not_a_replay
# The common version (known error 4): search the log for an id EQUAL to Last-Event-ID and,
# when none is found, start again from event 0 — a missing or future id replays everything.
from fastapi import FastAPI, Header
from fastapi.responses import Response
from fastapi.sse import EventSourceResponse, format_sse_event


def make_app(log, retry_ms=1000):
    app = FastAPI()

    @app.get("/events")
    async def events(last_event_id: str | None = Header(None)) -> Response:
        start = 0
        if last_event_id:
            for i, event in enumerate(log):
                if str(event.id) == last_event_id:
                    start = i + 1
                    break
        if start >= len(log):
            return Response(status_code=204)

        async def stream():
            yield format_sse_event(retry=retry_ms)
            for event in log[start:]:
                yield format_sse_event(data_str=event.data, id=str(event.id))

        return EventSourceResponse(stream())

    return app
