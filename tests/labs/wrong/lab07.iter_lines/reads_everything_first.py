# rejected by: test_lines_come_out_while_the_input_is_still_open, test_a_line_ended_by_a_cr_at_the_end_of_a_chunk_comes_out_at_once
# Collects the whole input before splitting it: right lines, but nothing until the stream ends.
import re


async def iter_lines(chunks):
    data = b"".join([chunk async for chunk in chunks])
    lines = re.split(r"\r\n|\r|\n", data.decode("utf-8"))
    if lines and lines[-1] == "":
        lines.pop()
    for line in lines:
        yield line
