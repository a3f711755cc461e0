# rejected by: test_leading_spaces_in_values_survive
# Writes "data:" + value with no space: valid for most values, but the parser removes ONE leading
# space, so a value that starts with a space loses it.
import re


def format_event(data=None, *, event=None, id=None, retry=None, comment=None):
    if event is not None and ("\r" in event or "\n" in event):
        raise ValueError("event must be one line")
    if id is not None and ("\r" in id or "\n" in id or "\0" in id):
        raise ValueError("id must be one line without NUL")
    if retry is not None and retry < 0:
        raise ValueError("retry must not be negative")
    lines = []
    if comment is not None:
        lines += [f":{line}" for line in re.split(r"\r\n|\r|\n", comment)]
    if event is not None:
        lines.append(f"event:{event}")
    if id is not None:
        lines.append(f"id:{id}")
    if retry is not None:
        lines.append(f"retry:{retry}")
    if data is not None:
        lines += [f"data:{line}" for line in re.split(r"\r\n|\r|\n", data)]
    return "\n".join(lines) + "\n\n"
