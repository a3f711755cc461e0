# rejected by: test_a_client_that_leaves_is_recorded_as_gone
# Records when the last body message (more_body False) goes out — right for a stream that ends, but a
# client that hangs up mid-stream never gets that message, so its request is never recorded at all.
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
        seen = {"status": 0, "bytes": 0}

        async def timed_send(message):
            await send(message)
            if message["type"] == "http.response.start":
                seen["status"] = message["status"]
            elif message["type"] == "http.response.body":
                seen["bytes"] += len(message.get("body", b""))
                if not message.get("more_body", False):
                    self.record(
                        {
                            "path": scope["path"],
                            "status": seen["status"],
                            "bytes": seen["bytes"],
                            "seconds": time.perf_counter() - started,
                            "client_left": False,
                        }
                    )

        await self.app(scope, receive, timed_send)
