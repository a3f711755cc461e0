# rejected by: test_the_file_is_closed_as_soon_as_the_consumer_stops
# iter(callable, sentinel) is lazy, but it is not a generator: the consumer cannot close() it,
# so the file stays open until garbage collection.
from functools import partial


def read_chunks(path, size=65536):
    f = open(path, "rb")
    return iter(partial(f.read, size), b"")
