# rejected by: test_content_type_is_json_lines
# Labels the stream application/json: clients then expect one JSON document, not one per line.
import json

from fastapi.responses import StreamingResponse


def ndjson_rows(items):
    async def lines():
        async for item in items:
            yield json.dumps(item) + "\n"

    return StreamingResponse(lines(), media_type="application/json")
