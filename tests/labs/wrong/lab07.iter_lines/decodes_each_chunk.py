# rejected by: test_a_character_cut_between_chunks_is_decoded_whole
# Decodes every chunk on its own: a character cut between two chunks raises UnicodeDecodeError.
async def iter_lines(chunks):
    pending = ""
    async for chunk in chunks:
        pending += chunk.decode("utf-8")
        *lines, pending = pending.replace("\r\n", "\n").replace("\r", "\n").split("\n")
        for line in lines:
            yield line
    if pending:
        yield pending
