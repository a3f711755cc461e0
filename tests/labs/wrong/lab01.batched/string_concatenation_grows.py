# rejected by: test_memory_stays_flat_as_the_input_grows
# Keeps every chunk it ever made in a list "for later": the output is right, the memory is not flat.
_seen = []


def batched(rows, max_bytes):
    chunk, size = "", 0
    for row in rows:
        n = len(row.encode())
        if chunk and size + n > max_bytes:
            _seen.append(chunk)
            yield chunk
            chunk, size = "", 0
        chunk += row
        size += n
    if chunk:
        yield chunk
