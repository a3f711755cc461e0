# Collects every item and sends json.dumps(list): one JSON array, nothing until the source ends.
import json

from fastapi.responses import StreamingResponse


def ndjson_rows(items):
    async def whole():
        collected = [item async for item in items]
        yield json.dumps(collected)

    return StreamingResponse(whole(), media_type="application/x-ndjson")
