# rejected by: test_chunks_join_to_the_whole_file, test_an_empty_file_gives_no_chunks
# Forgets that f.read() returns b'' at the end of the file: after the last chunk it yields b'' forever.
def read_chunks(path, size=65536):
    with open(path, "rb") as f:
        while True:
            yield f.read(size)
