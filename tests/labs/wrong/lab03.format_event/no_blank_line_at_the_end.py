# rejected by: test_an_event_is_its_fields_and_a_blank_line
# Ends the event with one newline, not a blank line: nothing dispatches it until the NEXT event's
# lines arrive (and those then run into it).
import re


def format_event(
    data: str | None = None,
    *,
    event: str | None = None,
    id: str | None = None,
    retry: int | None = None,
    comment: str | None = None,
) -> str:
    """One SSE event (or comment) in wire format, ending with a blank line."""
    if event is not None and ("\r" in event or "\n" in event):
        raise ValueError(f"an event type must be one line: {event!r}")
    if id is not None and ("\r" in id or "\n" in id or "\0" in id):
        raise ValueError(f"an id must be one line without NUL: {id!r}")
    if retry is not None and retry < 0:
        raise ValueError(f"retry is a number of milliseconds, not {retry}")
    line_break = r"\r\n|\r|\n"  # the only line breaks SSE knows
    lines: list[str] = []
    if comment is not None:
        lines += [f": {line}" for line in re.split(line_break, comment)]
    if event is not None:
        lines.append(f"event: {event}")
    if id is not None:
        lines.append(f"id: {id}")
    if retry is not None:
        lines.append(f"retry: {retry}")
    if data is not None:
        lines += [f"data: {line}" for line in re.split(line_break, data)]
    return "\n".join(lines) + "\n"
    # END SOLUTION
