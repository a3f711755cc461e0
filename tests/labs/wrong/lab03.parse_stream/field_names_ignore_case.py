# rejected by: test_comments_and_unknown_fields_are_ignored
# Compares field names case-insensitively ('DATA' counts as data): the spec matches them exactly,
# and any other name is an unknown field to ignore.
import re
from collections.abc import Iterable, Iterator


def parse_stream(chunks: Iterable[str]) -> Iterator[Event]:
    """Parse an event stream arriving as text chunks; yield each event when it is dispatched."""
    data: list[str] = []
    event_type = ""
    last_id = ""
    retry: int | None = None
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
        name = name.lower()
        if name == "data":
            data.append(value)
        elif name == "event":
            event_type = value
        elif name == "id" and "\0" not in value:
            last_id = value
        elif name == "retry" and value.isascii() and value.isdigit():
            retry = int(value)


def _lines(chunks: Iterable[str]) -> Iterator[str]:
    """Complete lines, as soon as their line break arrives (the break itself dropped)."""
    line_break = re.compile(r"\r\n|\r|\n")
    pending = ""  # the start of a line whose break has not arrived yet
    started = False  # has any text arrived? (a BOM only counts at the very start)
    skip_lf = False  # the last chunk ended in "\r": a "\n" next completes that break
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
    # whatever is still pending has no line break: the stream ended mid-line
    # END SOLUTION
