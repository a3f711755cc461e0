# rejected by: test_a_big_input_chunk_is_cut_into_many
# Yields the whole buffer once it holds at least `size` bytes: big chunks are never cut down.
async def rechunk(chunks, size):
    buffer = b""
    async for chunk in chunks:
        buffer += chunk
        if len(buffer) >= size:
            yield buffer
            buffer = b""
    if buffer:
        yield buffer
