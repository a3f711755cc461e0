# rejected by: test_a_finished_stream_is_recorded_once_after_its_last_byte, test_the_entry_says_what_the_client_saw, test_a_plain_response_is_recorded_with_its_status, test_a_client_that_leaves_is_recorded_as_gone
# Pure ASGI, but it records at http.response.start: for a stream that is the beginning, not the end.
import time


class TimingMiddleware:
    def __init__(self, app, record):
        self.app = app
        self.record = record

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()

        async def timed_send(message):
            if message["type"] == "http.response.start":
                self.record(
                    {
                        "path": scope["path"],
                        "status": message["status"],
                        "bytes": 0,
                        "seconds": time.perf_counter() - started,
                        "client_left": False,
                    }
                )
            await send(message)

        await self.app(scope, receive, timed_send)
