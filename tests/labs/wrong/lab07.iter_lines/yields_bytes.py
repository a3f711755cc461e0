# rejected by: test_lines_are_text_not_bytes
# Splits the bytes into lines and never decodes them: right line endings, but
# the lines come out as bytes, and every caller has to guess the encoding.
import re


async def iter_lines(chunks):
    pending, after_cr = b"", False
    async for chunk in chunks:
        if after_cr and chunk.startswith(b"\n"):
            chunk = chunk[1:]
        if chunk:
            after_cr = chunk.endswith(b"\r")
        *lines, pending = re.split(rb"\r\n|\r|\n", pending + chunk)
        for line in lines:
            yield line
    if pending:
        yield pending
