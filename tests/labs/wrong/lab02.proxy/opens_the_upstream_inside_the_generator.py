# rejected by: test_status_and_content_type_are_passed_through
# Opens the upstream inside the generator (the common copy-paste version): it streams and closes
# properly, but the response has already started with 200 before the upstream answered, so the
# upstream's status and Content-Type can no longer be passed through (known error 12).
import httpx
from fastapi.responses import StreamingResponse


async def proxy(url):
    async def relay():
        async with httpx.AsyncClient(timeout=httpx.Timeout(10.0, read=None)) as client:
            async with client.stream("GET", url) as upstream:
                async for chunk in upstream.aiter_bytes():
                    yield chunk

    return StreamingResponse(relay(), media_type="application/octet-stream")
