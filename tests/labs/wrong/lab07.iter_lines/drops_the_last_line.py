# Forgets the text left over when the input ends: a last line without a line ending is lost.
import codecs
import re


async def iter_lines(chunks):
    decoder = codecs.getincrementaldecoder("utf-8")()
    pending = ""
    async for chunk in chunks:
        pending += decoder.decode(chunk)
        cut = len(pending) - 1 if pending.endswith("\r") else len(pending)
        *lines, rest = re.split(r"\r\n|\r|\n", pending[:cut])
        pending = rest + pending[cut:]
        for line in lines:
            yield line
