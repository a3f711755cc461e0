# rejected by: test_an_event_without_data_is_not_dispatched
# Dispatches at every blank line that follows any field, as httpx-sse does: 'event: ping' alone,
# a lone 'retry:' or 'id:' block becomes an empty event; the spec dispatches only events with data.
import re


def parse_stream(chunks):
    data = []
    event_type = ""
    last_id = ""
    retry = None
    for line in _lines(chunks):
        if line == "":
            if data or event_type or retry is not None:
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
        if skip_lf:
            skip_lf = False
            chunk = chunk.removeprefix("\n")
        text = pending + chunk
        start = 0
        for match in line_break.finditer(text):
            yield text[start : match.start()]
            start = match.end()
        pending = text[start:]
        skip_lf = text.endswith("\r")
