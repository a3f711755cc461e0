# rejected by: test_a_line_ended_by_a_cr_at_the_end_of_a_chunk_comes_out_at_once
# Holds back a "\r" at the end of a chunk until the next chunk says whether a "\n"
# follows — the fault lesson 03 finds in httpx-sse. `data: x\r\r` followed by
# silence never gives its blank line, so the event is never dispatched; a browser
# ends the line at the "\r" at once and skips a "\n" that comes next.
import codecs
import re

LINE_END = re.compile(r"\r\n|\r|\n")


async def iter_lines(chunks):
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    pending = ""
    async for chunk in chunks:
        pending += decoder.decode(chunk)
        cut = len(pending) - 1 if pending.endswith("\r") else len(pending)
        *lines, rest = LINE_END.split(pending[:cut])
        pending = rest + pending[cut:]
        for line in lines:
            yield line
    pending += decoder.decode(b"", final=True)
    if pending:
        yield LINE_END.split(pending)[0]
