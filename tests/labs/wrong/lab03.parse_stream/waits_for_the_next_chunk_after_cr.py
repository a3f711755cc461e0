# rejected by: test_a_cr_ended_event_does_not_wait_for_the_next_chunk
# Holds back a trailing "\r" until the next chunk shows whether a "\n" follows (as httpx-sse does):
# the events are right, but an event ended by "\r" waits for data that may come minutes later.
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
        hold = text.endswith("\r")
        if hold:
            text = text[:-1]
        start = 0
        for match in line_break.finditer(text):
            yield text[start : match.start()]
            start = match.end()
        pending = text[start:] + ("\r" if hold else "")
    if pending:
        yield from line_break.split(pending)[:-1]
