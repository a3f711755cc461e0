# rejected by: test_batched_is_lazy_on_an_endless_input, test_memory_stays_flat_as_the_input_grows
# Reads every row into a list before yielding: correct chunks, but not lazy and not flat in memory.
def batched(rows, max_bytes):
    rows = list(rows)
    chunk, size = [], 0
    for row in rows:
        n = len(row.encode())
        if chunk and size + n > max_bytes:
            yield "".join(chunk)
            chunk, size = [], 0
        chunk.append(row)
        size += n
    if chunk:
        yield "".join(chunk)
