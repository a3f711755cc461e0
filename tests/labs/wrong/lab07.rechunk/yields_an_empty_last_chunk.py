# rejected by: test_the_short_tail_is_kept_and_no_empty_chunk_is_added
# Always yields what is left at the end, even when nothing is: an empty chunk after an exact multiple.
async def rechunk(chunks, size):
    buffer = b""
    async for chunk in chunks:
        buffer += chunk
        while len(buffer) >= size:
            yield buffer[:size]
            buffer = buffer[size:]
    yield buffer
