# Collects the whole input before splitting it: right lines, but nothing until the stream ends.
import re


async def iter_lines(chunks):
    data = b"".join([chunk async for chunk in chunks])
    lines = re.split(r"\r\n|\r|\n", data.decode("utf-8"))
    if lines and lines[-1] == "":
        lines.pop()
    for line in lines:
        yield line
