# rejected by: test_a_crlf_split_across_chunks_is_one_line_break
# Splits every chunk on its own line breaks and carries only the unfinished line over, so a
# "\r" at the end of one chunk and a "\n" at the start of the next count as TWO line breaks
# (an empty line in between: the event is dispatched too early).
import re


def parse_stream(chunks):
    data = []
    event_type = ""
    last_id = ""
    retry = None
    for line in _lines(chunks):
        if line == "":
            if data:
                yield Event(event_type or "message", "\n".join(data), last_id, retry)
            data, event_type, retry = [], "", None
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "data":
            data.append(value)
        elif name == "event":
            event_type = value
        elif name == "id" and "\0" not in value:
            last_id = value
        elif name == "retry" and value.isascii() and value.isdigit():
            retry = int(value)


def _lines(chunks):
    line_break = re.compile(r"\r\n|\r|\n")
    pending = ""
    started = False
    skip_lf = False
    for chunk in chunks:
        if not chunk:
            continue
        if not started:
            started = True
            chunk = chunk.removeprefix("\ufeff")
        text = pending + chunk
        start = 0
        for match in line_break.finditer(text):
            yield text[start : match.start()]
            start = match.end()
        pending = text[start:]
        skip_lf = text.endswith("\r")
