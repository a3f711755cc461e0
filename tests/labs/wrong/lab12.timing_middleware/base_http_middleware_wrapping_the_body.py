# rejected by: test_the_model_stops_within_200ms_of_the_client_leaving, test_a_client_that_leaves_is_recorded_as_gone
# The "fixed" BaseHTTPMiddleware: it wraps response.body_iterator, so it times the whole stream and counts
# its bytes. But it is still BaseHTTPMiddleware: a relay waiting for a whole answer never learns the client left
# (request.is_disconnected() stays False), the model runs on, and the departure is never noticed.
import time

from starlette.middleware.base import BaseHTTPMiddleware


class TimingMiddleware(BaseHTTPMiddleware):
    def __init__(self, app, record):
        super().__init__(app)
        self.record = record

    async def dispatch(self, request, call_next):
        started = time.perf_counter()
        response = await call_next(request)
        body = response.body_iterator

        async def counted():
            size = 0
            try:
                async for chunk in body:
                    size += len(chunk)
                    yield chunk
            finally:
                self.record(
                    {
                        "path": request.url.path,
                        "status": response.status_code,
                        "bytes": size,
                        "seconds": time.perf_counter() - started,
                        "client_left": False,
                    }
                )

        response.body_iterator = counted()
        return response
