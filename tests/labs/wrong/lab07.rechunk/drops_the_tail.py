# rejected by: test_the_short_tail_is_kept_and_no_empty_chunk_is_added
# Never yields the bytes left over at the end: the short last chunk is lost.
async def rechunk(chunks, size):
    buffer = b""
    async for chunk in chunks:
        buffer += chunk
        while len(buffer) >= size:
            yield buffer[:size]
            buffer = buffer[size:]
