# rejected by: test_a_finished_stream_is_recorded_once_after_its_last_byte, test_the_entry_says_what_the_client_saw, test_a_plain_response_is_recorded_with_its_status, test_the_model_stops_within_200ms_of_the_client_leaving, test_a_client_that_leaves_is_recorded_as_gone
# The usual timing middleware: BaseHTTPMiddleware, timed around call_next. call_next returns when the
# headers are ready, so a stream is "done" in milliseconds; and behind it request.is_disconnected() never
# turns True while the relay waits for a whole answer, so the model keeps generating after the client left.
import time

from starlette.middleware.base import BaseHTTPMiddleware


class TimingMiddleware(BaseHTTPMiddleware):
    def __init__(self, app, record):
        super().__init__(app)
        self.record = record

    async def dispatch(self, request, call_next):
        started = time.perf_counter()
        response = await call_next(request)
        self.record(
            {
                "path": request.url.path,
                "status": response.status_code,
                "bytes": 0,
                "seconds": time.perf_counter() - started,
                "client_left": False,
            }
        )
        return response
