# Closes the upstream AFTER the loop, not in `finally`: when the client leaves, the generator is
# cancelled at its await and the lines after the loop never run. (httpx happens to drop the
# upstream connection itself when a read is cancelled, but the AsyncClient is left open, and
# any other cleanup written after the loop is skipped the same way — known error 11.)
import httpx
from fastapi.responses import StreamingResponse


async def proxy(url):
    client = httpx.AsyncClient(timeout=httpx.Timeout(10.0, read=None))
    upstream = await client.send(client.build_request("GET", url), stream=True)

    async def relay():
        async for chunk in upstream.aiter_bytes():
            yield chunk
        await upstream.aclose()
        await client.aclose()

    return StreamingResponse(relay(), status_code=upstream.status_code, media_type=upstream.headers.get("content-type"))
