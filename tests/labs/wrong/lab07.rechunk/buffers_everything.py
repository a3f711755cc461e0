# rejected by: test_full_chunks_come_out_while_the_input_is_still_open
# Reads the whole input before cutting it: right chunks, but none until the stream ends.
async def rechunk(chunks, size):
    data = b"".join([chunk async for chunk in chunks])
    for i in range(0, len(data), size):
        yield data[i : i + size]
