# rejected by: test_the_upstream_is_closed_within_200_ms_of_the_client_leaving
# Relays with a SYNC generator and httpx.Client (known error 13): Starlette runs it in a worker
# thread, which stays blocked reading the silent upstream after the client has left; its
# `finally` does not run until the upstream speaks again (and then only at garbage collection).
import httpx
from fastapi.responses import StreamingResponse


async def proxy(url):
    client = httpx.Client(timeout=httpx.Timeout(10.0, read=None))
    upstream = client.send(client.build_request("GET", url), stream=True)

    def relay():
        try:
            for chunk in upstream.iter_bytes():
                yield chunk
        finally:
            upstream.close()
            client.close()

    return StreamingResponse(relay(), status_code=upstream.status_code, media_type=upstream.headers.get("content-type"))
