# rejected by: test_crlf_cut_between_chunks_is_one_line_ending, test_every_split_of_the_input_gives_the_same_lines
# Treats a "\r" at the end of a chunk as a complete line ending: a "\r\n" cut in two gives an extra blank line.
import codecs
import re


async def iter_lines(chunks):
    decoder = codecs.getincrementaldecoder("utf-8")()
    pending = ""
    async for chunk in chunks:
        pending += decoder.decode(chunk)
        *lines, pending = re.split(r"\r\n|\r|\n", pending)
        for line in lines:
            yield line
    if pending:
        yield pending
