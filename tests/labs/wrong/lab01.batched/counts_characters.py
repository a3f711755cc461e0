# rejected by: test_batched_counts_utf8_bytes_not_characters
# Measures rows with len(row): characters, not UTF-8 bytes, so non-ASCII chunks overflow the limit.
def batched(rows, max_bytes):
    chunk, size = [], 0
    for row in rows:
        if chunk and size + len(row) > max_bytes:
            yield "".join(chunk)
            chunk, size = [], 0
        chunk.append(row)
        size += len(row)
    if chunk:
        yield "".join(chunk)
