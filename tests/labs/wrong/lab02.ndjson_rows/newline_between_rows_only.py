# rejected by: test_each_item_is_one_json_line_ending_in_a_newline
# Puts "\n" BETWEEN rows: the last line has no newline, so a line reader waits for it forever.
import json

from fastapi.responses import StreamingResponse


def ndjson_rows(items):
    async def lines():
        first = True
        async for item in items:
            yield ("" if first else "\n") + json.dumps(item)
            first = False

    return StreamingResponse(lines(), media_type="application/x-ndjson")
