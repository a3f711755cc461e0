# rejected by: test_multi_line_data_gets_one_data_field_per_line
# Gives each "\n"-separated line its own data field but forgets that a lone "\r" also ends a line:
# "a\rb" then arrives as two lines, and "\r\n" leaves a stray field boundary.
def format_event(data=None, *, event=None, id=None, retry=None, comment=None):
    if event is not None and ("\r" in event or "\n" in event):
        raise ValueError("event must be one line")
    if id is not None and ("\r" in id or "\n" in id or "\0" in id):
        raise ValueError("id must be one line without NUL")
    if retry is not None and retry < 0:
        raise ValueError("retry must not be negative")
    lines = []
    if comment is not None:
        lines += [f": {line}" for line in comment.split("\n")]
    if event is not None:
        lines.append(f"event: {event}")
    if id is not None:
        lines.append(f"id: {id}")
    if retry is not None:
        lines.append(f"retry: {retry}")
    if data is not None:
        lines += [f"data: {line}" for line in data.split("\n")]
    return "\n".join(lines) + "\n\n"
