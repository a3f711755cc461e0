# rejected by: test_chunks_join_to_the_whole_file, test_every_chunk_but_the_last_has_the_asked_size
# Opens the file in text mode: yields str, and chokes on bytes that are not valid UTF-8.
def read_chunks(path, size=65536):
    with open(path) as f:
        while chunk := f.read(size):
            yield chunk
