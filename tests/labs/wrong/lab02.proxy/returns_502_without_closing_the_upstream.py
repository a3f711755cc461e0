# rejected by: test_a_failing_upstream_gets_502_and_is_closed
# Answers 502 for a failing upstream but leaves it open, trusting the generator's `finally`: that
# upstream response never reaches a generator (none is started for the 502), so nothing closes it.
import httpx
from fastapi.responses import PlainTextResponse, StreamingResponse


async def proxy(url):
    client = httpx.AsyncClient(timeout=httpx.Timeout(10.0, read=None))
    upstream = await client.send(client.build_request("GET", url), stream=True)
    if upstream.status_code >= 500:
        return PlainTextResponse("bad gateway\n", status_code=502)

    async def relay():
        try:
            async for chunk in upstream.aiter_bytes():
                yield chunk
        finally:
            await upstream.aclose()
            await client.aclose()

    return StreamingResponse(relay(), status_code=upstream.status_code, media_type=upstream.headers.get("content-type"))
