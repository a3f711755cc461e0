# rejected by: test_a_line_break_in_event_or_id_raises_value_error, test_a_nul_in_id_raises_value_error, test_a_negative_retry_raises_value_error
# Formats every field correctly but never refuses what cannot be sent:
# a newline in `event`/`id` starts a new field, a NUL id is ignored, a negative retry is invalid.
import re


def format_event(data=None, *, event=None, id=None, retry=None, comment=None):
    lines = []
    if comment is not None:
        lines += [f": {line}" for line in re.split(r"\r\n|\r|\n", comment)]
    if event is not None:
        lines.append(f"event: {event}")
    if id is not None:
        lines.append(f"id: {id}")
    if retry is not None:
        lines.append(f"retry: {retry}")
    if data is not None:
        lines += [f"data: {line}" for line in re.split(r"\r\n|\r|\n", data)]
    return "\n".join(lines) + "\n\n"
