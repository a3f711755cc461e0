# rejected by: test_only_cr_and_lf_end_a_line
# Right about cut characters and a cut "\r\n", but splits with str.splitlines(), as httpx's aiter_lines() does:
# U+2028, U+2029, U+0085 and the ASCII separators end lines too, so a data: line or a JSON document is cut in two.
import codecs


async def iter_lines(chunks):
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    pending = ""
    after_cr = False
    async for chunk in chunks:
        text = decoder.decode(chunk)
        if not text:
            continue
        if after_cr and text.startswith("\n"):
            text = text[1:]
        after_cr = text.endswith("\r")
        pieces = (pending + text).splitlines(keepends=True)
        pending = pieces.pop() if pieces and pieces[-1].splitlines() == [pieces[-1]] else ""
        for piece in pieces:
            yield piece.splitlines()[0]
    pending += decoder.decode(b"", final=True)
    if pending:
        yield pending
