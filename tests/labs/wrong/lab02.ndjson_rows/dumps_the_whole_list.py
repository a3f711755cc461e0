# rejected by: test_first_line_arrives_before_the_source_is_finished, test_each_item_is_one_json_line_ending_in_a_newline
# Collects every item and sends json.dumps(list): one JSON array, nothing until the source ends.
import json

from fastapi.responses import StreamingResponse


def ndjson_rows(items):
    async def whole():
        collected = [item async for item in items]
        yield json.dumps(collected)

    return StreamingResponse(whole(), media_type="application/x-ndjson")
