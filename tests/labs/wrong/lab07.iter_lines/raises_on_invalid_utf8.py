# rejected by: test_bytes_that_are_not_utf8_become_the_replacement_character
# Decodes incrementally but strictly: one byte that is not UTF-8 raises
# UnicodeDecodeError and the whole stream is lost. A browser's decoder puts
# U+FFFD there and reads on (errors="replace").
import codecs
import re


async def iter_lines(chunks):
    decoder = codecs.getincrementaldecoder("utf-8")()
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
    pending += decoder.decode(b"", final=True)
    if pending:
        yield pending
