# rejected by: test_multi_line_data_gets_one_data_field_per_line, test_falsy_values_are_still_sent
# The source material's helper (known error 1): one `data:` line whatever the data holds,
# `if id:` drops a real id "0", and nothing is validated.
def format_event(data=None, *, event=None, id=None, retry=None, comment=None):
    msg = ""
    if id:
        msg += f"id: {id}\n"
    if event:
        msg += f"event: {event}\n"
    if retry:
        msg += f"retry: {retry}\n"
    msg += f"data: {data}\n\n"
    return msg
