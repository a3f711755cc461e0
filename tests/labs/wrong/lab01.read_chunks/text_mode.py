# Opens the file in text mode: yields str, and chokes on bytes that are not valid UTF-8.
def read_chunks(path, size=65536):
    with open(path) as f:
        while chunk := f.read(size):
            yield chunk
