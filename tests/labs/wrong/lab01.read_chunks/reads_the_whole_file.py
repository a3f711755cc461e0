# rejected by: test_first_chunk_arrives_while_the_input_is_still_being_written
# Reads the whole file with f.read() and slices it: right chunks, but the whole file sits in memory
# and nothing arrives until the input has ended.
def read_chunks(path, size=65536):
    with open(path, "rb") as f:
        data = f.read()
    for start in range(0, len(data), size):
        yield data[start : start + size]
