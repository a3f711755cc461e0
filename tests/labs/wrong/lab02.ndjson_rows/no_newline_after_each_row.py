# rejected by: test_each_item_is_one_json_line_ending_in_a_newline
# Yields json.dumps(item) with nothing after it: the documents run together on one line.
import json

from fastapi.responses import StreamingResponse


def ndjson_rows(items):
    async def lines():
        async for item in items:
            yield json.dumps(item)

    return StreamingResponse(lines(), media_type="application/x-ndjson")
