# rejected by: test_batched_fills_each_chunk_up_to_the_byte_limit, test_a_row_longer_than_the_limit_is_a_chunk_of_its_own
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
