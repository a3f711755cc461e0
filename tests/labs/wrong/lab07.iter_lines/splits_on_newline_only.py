# rejected by: test_lines_come_without_their_line_endings
# Splits on "\n" only: lines that ended with "\r\n" keep their "\r", and a lone "\r" ends nothing.
import codecs


async def iter_lines(chunks):
    decoder = codecs.getincrementaldecoder("utf-8")()
    pending = ""
    async for chunk in chunks:
        pending += decoder.decode(chunk)
        *lines, pending = pending.split("\n")
        for line in lines:
            yield line
    if pending:
        yield pending
