# rejected by: test_bytes_are_relayed_before_the_upstream_finishes
# Reads the whole upstream body with `await client.get(...)` before responding: nothing streams,
# and an endless upstream never answers at all.
import httpx
from fastapi.responses import Response


async def proxy(url):
    async with httpx.AsyncClient(timeout=httpx.Timeout(10.0, read=None)) as client:
        upstream = await client.get(url)
    return Response(upstream.content, status_code=upstream.status_code, media_type=upstream.headers.get("content-type"))
