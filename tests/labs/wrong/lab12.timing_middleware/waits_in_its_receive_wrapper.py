# rejected by: test_the_model_stops_within_200ms_of_the_client_leaving
# Pure ASGI and records correctly, but its receive wrapper awaits something before the real receive
# (here a lock, "to be safe"). request.is_disconnected() calls receive in an already-cancelled scope and
# takes only what is there at once: the extra await is cancelled first, so it never sees the disconnect.
import asyncio
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
        seen = {"status": 0, "bytes": 0, "finished": False, "client_left": False}
        lock = asyncio.Lock()

        async def watched_receive():
            async with lock:
                await asyncio.sleep(0)
                message = await receive()
            if message["type"] == "http.disconnect" and not seen["finished"]:
                seen["client_left"] = True
            return message

        async def watched_send(message):
            if message["type"] == "http.response.start":
                seen["status"] = message["status"]
            elif message["type"] == "http.response.body":
                seen["bytes"] += len(message.get("body", b""))
                seen["finished"] = not message.get("more_body", False)
            await send(message)

        try:
            await self.app(scope, watched_receive, watched_send)
        finally:
            self.record(
                {
                    "path": scope["path"],
                    "status": seen["status"],
                    "bytes": seen["bytes"],
                    "seconds": time.perf_counter() - started,
                    "client_left": seen["client_left"],
                }
            )
