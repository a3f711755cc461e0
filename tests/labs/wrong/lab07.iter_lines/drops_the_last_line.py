# rejected by: test_a_last_line_without_line_ending_is_not_dropped
# Forgets the text left over when the input ends: a last line without a line ending is lost.
import codecs
import re


async def iter_lines(chunks):
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    pending, after_cr = "", False
    async for chunk in chunks:
        text = decoder.decode(chunk)
        if not text:
            continue
        if after_cr and text.startswith("\n"):
            text = text[1:]
        after_cr = text.endswith("\r")
        *lines, pending = re.split(r"\r\n|\r|\n", pending + text)
        for line in lines:
            yield line
