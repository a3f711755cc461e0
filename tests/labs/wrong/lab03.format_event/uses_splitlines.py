# rejected by: test_data_is_split_only_at_cr_and_lf, test_empty_data_and_a_trailing_newline_survive
# Splits data with str.splitlines(): it also splits at \u2028, \x85, \x0b ... and drops an empty last line,
# so "a\n" arrives as "a" and "" sends no data field at all.
def format_event(data=None, *, event=None, id=None, retry=None, comment=None):
    if event is not None and ("\r" in event or "\n" in event):
        raise ValueError("event must be one line")
    if id is not None and ("\r" in id or "\n" in id or "\0" in id):
        raise ValueError("id must be one line without NUL")
    if retry is not None and retry < 0:
        raise ValueError("retry must not be negative")
    lines = []
    if comment is not None:
        lines += [f": {line}" for line in comment.splitlines()]
    if event is not None:
        lines.append(f"event: {event}")
    if id is not None:
        lines.append(f"id: {id}")
    if retry is not None:
        lines.append(f"retry: {retry}")
    if data is not None:
        lines += [f"data: {line}" for line in data.splitlines()]
    return "\n".join(lines) + "\n\n"
