# rejected by: test_a_crlf_split_across_chunks_is_one_line_break, test_agrees_with_the_spec_on_any_stream
# Splits the text on "\n\n" and each event on "\n" (the usual fetch()-reader snippet):
# streams whose lines end in "\r\n" or "\r" give no events at all.
def parse_stream(chunks):
    buffer = ""
    last_id = ""
    for chunk in chunks:
        buffer += chunk
        *blocks, buffer = buffer.split("\n\n")
        for block in blocks:
            data, kind, retry = [], "", None
            for line in block.split("\n"):
                if line.startswith(":"):
                    continue
                name, _, value = line.partition(":")
                value = value.removeprefix(" ")
                if name == "data":
                    data.append(value)
                elif name == "event":
                    kind = value
                elif name == "id" and "\0" not in value:
                    last_id = value
                elif name == "retry" and value.isascii() and value.isdigit():
                    retry = int(value)
            if data:
                yield Event(kind or "message", "\n".join(data), last_id, retry)
