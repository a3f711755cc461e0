# Never yields the bytes left over at the end: the short last chunk is lost.
async def rechunk(chunks, size):
    buffer = b""
    async for chunk in chunks:
        buffer += chunk
        while len(buffer) >= size:
            yield buffer[:size]
            buffer = buffer[size:]
