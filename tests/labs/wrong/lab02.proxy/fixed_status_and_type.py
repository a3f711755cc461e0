# rejected by: test_status_and_content_type_are_passed_through
# Streams correctly but always answers 200 application/octet-stream: the upstream's status
# (a 404 stays a 404) and its Content-Type are lost.
import httpx
from fastapi.responses import StreamingResponse


async def proxy(url):
    client = httpx.AsyncClient(timeout=httpx.Timeout(10.0, read=None))
    upstream = await client.send(client.build_request("GET", url), stream=True)

    async def relay():
        try:
            async for chunk in upstream.aiter_bytes():
                yield chunk
        finally:
            await upstream.aclose()
            await client.aclose()

    return StreamingResponse(relay(), media_type="application/octet-stream")
