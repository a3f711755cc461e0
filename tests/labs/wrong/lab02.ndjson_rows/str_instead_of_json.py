# rejected by: test_each_item_is_one_json_line_ending_in_a_newline
# Writes str(item): Python's repr uses single quotes and None/True, which is not JSON.
from fastapi.responses import StreamingResponse


def ndjson_rows(items):
    async def lines():
        async for item in items:
            yield f"{item}\n"

    return StreamingResponse(lines(), media_type="application/x-ndjson")
