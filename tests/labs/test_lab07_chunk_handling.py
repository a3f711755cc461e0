"""Checks for lab 07 — chunk handling: ``iter_lines`` and ``rechunk``.

Both helpers are fed the same bytes split in many different ways: whatever the
split, the output must be the same. Sources that never end prove the helpers
yield as they go instead of waiting for the end. ``iter_lines`` must read lines
the way a browser reads an event stream (the WHATWG rules): a ``\r`` ends a line
at once, a ``\n`` right after it belongs to it, and bytes that are not UTF-8
become U+FFFD. The sources are the check's own async generators; what comes
back is compared with ``==`` and exact types.
"""

from __future__ import annotations

import asyncio
import inspect
import random
from collections.abc import AsyncIterator, Iterable

import pytest

LINES = "lab07.iter_lines"
RECHUNK = "lab07.rechunk"

SAMPLE = "naïve café\r\nüber → 日本\n\n💡 crème brûlée\rlast line"
SAMPLE_LINES = ["naïve café", "über → 日本", "", "💡 crème brûlée", "last line"]


async def source(parts: Iterable[bytes]) -> AsyncIterator[bytes]:
    for part in parts:
        yield part
        await asyncio.sleep(0)


async def endless(first: list[bytes]) -> AsyncIterator[bytes]:
    """Yields ``first``, then stays open and silent, like a live stream between events."""
    for part in first:
        yield part
    await asyncio.Event().wait()
    yield b""  # pragma: no cover - never reached


def splits(data: bytes, n: int) -> list[list[bytes]]:
    """Every way to cut ``data`` into two pieces, plus ``n`` random cuts into many pieces."""
    ways = [[data[:i], data[i:]] for i in range(len(data) + 1)]
    ways.append([data[i : i + 1] for i in range(len(data))])  # one byte at a time
    rng = random.Random(7)
    for _ in range(n):
        cuts = sorted(rng.sample(range(1, len(data)), rng.randint(2, 8)))
        ways.append([data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)])
    return ways


async def run(stream: object, what: str, timeout: float = 5.0) -> list:
    """Collect an async generator, failing with advice instead of a crash or a hang."""
    if inspect.iscoroutine(stream):
        await stream  # a stub raises NotImplementedError here
        pytest.fail(f"{what} must be an async generator: `async def` with `yield` inside", pytrace=False)
    if not hasattr(stream, "__anext__"):
        pytest.fail(f"{what} must be an async generator: `async def` with `yield` inside", pytrace=False)

    async def collect() -> list:
        return [item async for item in stream]

    try:
        return await asyncio.wait_for(collect(), timeout)
    except TimeoutError:
        pytest.fail(f"{what} did not finish within {timeout:g} s", pytrace=False)
    except UnicodeDecodeError as exc:
        pytest.fail(
            f"{what} raised UnicodeDecodeError ({exc.reason}): a chunk can end in the middle of a character — "
            "decode with an incremental decoder, not chunk.decode() — and bytes that are not UTF-8 at all become "
            "U+FFFD, as in a browser: codecs.getincrementaldecoder('utf-8')(errors='replace')",
            pytrace=False,
        )


async def take(stream: object, n: int, what: str, timeout: float = 3.0, advice: str = "") -> list:
    """The first ``n`` items of an async generator whose input never ends."""
    if inspect.iscoroutine(stream) or not hasattr(stream, "__anext__"):
        if inspect.iscoroutine(stream):
            await stream
        pytest.fail(f"{what} must be an async generator: `async def` with `yield` inside", pytrace=False)
    got: list = []

    async def first_n() -> None:
        async for item in stream:
            got.append(item)
            if len(got) == n:
                return

    try:
        await asyncio.wait_for(first_n(), timeout)
    except TimeoutError:
        pytest.fail(
            f"after {timeout:g} s {what} had yielded {len(got)} of the {n} items its input already held: "
            + (advice or "yield each item as soon as it is complete, do not wait for the input to end"),
            pytrace=False,
        )
    finally:
        await stream.aclose()  # type: ignore[attr-defined]
    return got


# --------------------------------------------------------------------------- iter_lines


@pytest.mark.exercise(LINES)
async def test_lines_come_without_their_line_endings(submission) -> None:
    got = await run(submission.iter_lines(source([b"one\ntwo\r\nthree\rfour\n"])), "iter_lines")
    assert got == ["one", "two", "three", "four"], (
        f"lines end with \\n, \\r\\n or a lone \\r, and come out without them; got {got!r}"
    )


@pytest.mark.exercise(LINES)
async def test_only_cr_and_lf_end_a_line(submission) -> None:
    line = "one\u2028still one\x85still\u2029one\x1cand\x0bstill\x0cone"
    got = await run(submission.iter_lines(source([f"{line}\ntwo\n".encode()])), "iter_lines")
    assert got == [line, "two"], (
        "only \\r\\n, \\r and \\n end a line; U+2028, U+2029, U+0085 and the other breaks that "
        f"str.splitlines() (and so httpx's aiter_lines()) knows are text inside the line; got {got!r}"
    )


@pytest.mark.exercise(LINES)
async def test_lines_are_text_not_bytes(submission) -> None:
    got = await run(submission.iter_lines(source([b"caf\xc3\xa9\n"])), "iter_lines")
    assert got and all(type(line) is str for line in got), f"yield str lines (decoded UTF-8), got {got!r}"


@pytest.mark.exercise(LINES)
async def test_a_character_cut_between_chunks_is_decoded_whole(submission) -> None:
    data = "café ☕ 💡\n".encode()
    for parts in splits(data, 0):
        got = await run(submission.iter_lines(source(parts)), "iter_lines")
        assert got == ["café ☕ 💡"], (
            f"with the bytes cut as {parts!r} the line came out as {got!r}: "
            "keep the bytes of a cut character until the rest of it arrives (an incremental decoder does this)"
        )


@pytest.mark.exercise(LINES)
async def test_crlf_cut_between_chunks_is_one_line_ending(submission) -> None:
    got = await run(submission.iter_lines(source([b"first\r", b"\nsecond\r", b"\n"])), "iter_lines")
    assert got == ["first", "second"], (
        f"'\\r' at the end of one chunk and '\\n' at the start of the next are ONE line ending; got {got!r} "
        "(the '\\r' ends its line at once; a '\\n' that comes right after it, even in the next chunk, ends nothing)"
    )


@pytest.mark.exercise(LINES)
async def test_a_line_ended_by_a_cr_at_the_end_of_a_chunk_comes_out_at_once(submission) -> None:
    got = await take(
        submission.iter_lines(endless([b"data: x\r\r"])),
        2,
        "iter_lines",
        advice=(
            "a '\\r' ends its line at once, also at the very end of a chunk: a browser dispatches this event now, "
            "and the next chunk may never come — remember to skip a '\\n' that starts the next chunk instead"
        ),
    )
    assert got == ["data: x", ""], f"b'data: x\\r\\r' holds two complete lines, 'data: x' and ''; got {got!r}"


@pytest.mark.exercise(LINES)
async def test_bytes_that_are_not_utf8_become_the_replacement_character(submission) -> None:
    got = await run(submission.iter_lines(source([b"caf\xff\n", b"ok\n"])), "iter_lines")
    assert got == ["caf\ufffd", "ok"], f"a byte that is not UTF-8 becomes U+FFFD (\ufffd), as in a browser; got {got!r}"
    got = await run(submission.iter_lines(source([b"end \xe2\x82"])), "iter_lines")
    assert got == ["end \ufffd"], f"a character cut off by the end of the input becomes U+FFFD; got {got!r}"


@pytest.mark.exercise(LINES)
async def test_blank_lines_are_kept(submission) -> None:
    got = await run(submission.iter_lines(source([b"data: a\n\ndata: b\r\n\r\n"])), "iter_lines")
    assert got == ["data: a", "", "data: b", ""], f"a blank line is a line (it ends an SSE event); got {got!r}"


@pytest.mark.exercise(LINES)
async def test_a_last_line_without_line_ending_is_not_dropped(submission) -> None:
    got = await run(submission.iter_lines(source([b"first\nla", b"st"])), "iter_lines")
    assert got == ["first", "last"], f"when the input ends, yield the unfinished last line too; got {got!r}"
    got = await run(submission.iter_lines(source([b"first\n"])), "iter_lines")
    assert got == ["first"], f"input that ends with a line ending has no extra empty line after it; got {got!r}"


@pytest.mark.exercise(LINES)
async def test_every_split_of_the_input_gives_the_same_lines(submission) -> None:
    data = SAMPLE.encode()
    for parts in splits(data, 40):
        got = await run(submission.iter_lines(source(parts)), "iter_lines")
        assert got == SAMPLE_LINES, f"with the input cut as {parts!r}: expected {SAMPLE_LINES!r}, got {got!r}"


@pytest.mark.exercise(LINES)
async def test_lines_come_out_while_the_input_is_still_open(submission) -> None:
    got = await take(submission.iter_lines(endless([b"event: a\ndata: 1", b"\n\n"])), 3, "iter_lines")
    assert got == ["event: a", "data: 1", ""], f"expected the three complete lines, got {got!r}"


# --------------------------------------------------------------------------- rechunk


def expected_chunks(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


BINARY = bytes(range(256)) * 9 + "café 💡".encode()  # 2,313 bytes, cuts fall inside characters too


@pytest.mark.exercise(RECHUNK)
async def test_chunks_have_the_asked_size_and_join_to_the_input(submission) -> None:
    parts = [BINARY[i : i + 37] for i in range(0, len(BINARY), 37)]
    got = await run(submission.rechunk(source(parts), 100), "rechunk")
    assert all(isinstance(c, bytes) for c in got), "yield bytes, not text: do not decode"
    assert b"".join(got) == BINARY, "joined together, the chunks must equal the input bytes, in order"
    sizes = [len(c) for c in got]
    assert sizes[:-1] == [100] * (len(sizes) - 1) and 0 < sizes[-1] <= 100, (
        f"every chunk but the last must be exactly 100 bytes and the last 1..100; got sizes {sizes}"
    )


@pytest.mark.exercise(RECHUNK)
async def test_every_split_of_the_input_gives_the_same_chunks(submission) -> None:
    data = BINARY[:300]
    for parts in splits(data, 20)[::7]:
        got = await run(submission.rechunk(source(parts), 64), "rechunk")
        assert got == expected_chunks(data, 64), (
            f"with the input cut into pieces of {[len(p) for p in parts]} bytes the output was "
            f"{[len(c) for c in got]} bytes: it must not depend on how the input was cut"
        )


@pytest.mark.exercise(RECHUNK)
async def test_a_big_input_chunk_is_cut_into_many(submission) -> None:
    got = await run(submission.rechunk(source([b"x" * 10_000]), 1000), "rechunk")
    assert [len(c) for c in got] == [1000] * 10, (
        f"one 10,000-byte input chunk with size 1000 gives ten chunks of 1000; got sizes {[len(c) for c in got]}"
    )


@pytest.mark.exercise(RECHUNK)
async def test_the_short_tail_is_kept_and_no_empty_chunk_is_added(submission) -> None:
    got = await run(submission.rechunk(source([b"a" * 1500, b"b" * 1000]), 1000), "rechunk")
    assert [len(c) for c in got] == [1000, 1000, 500], (
        f"2,500 bytes with size 1000 give 1000, 1000 and a last chunk of 500; got sizes {[len(c) for c in got]}"
    )
    got = await run(submission.rechunk(source([b"a" * 700, b"b" * 1300]), 1000), "rechunk")
    assert [len(c) for c in got] == [1000, 1000], (
        f"2,000 bytes with size 1000 give exactly two chunks (never an empty one); got sizes {[len(c) for c in got]}"
    )
    got = await run(submission.rechunk(source([]), 1000), "rechunk")
    assert got == [], f"no input gives no chunks; got {got!r}"


@pytest.mark.exercise(RECHUNK)
async def test_full_chunks_come_out_while_the_input_is_still_open(submission) -> None:
    got = await take(submission.rechunk(endless([b"y" * 2500, b"z" * 600]), 1000), 3, "rechunk")
    assert got == [b"y" * 1000, b"y" * 1000, b"y" * 500 + b"z" * 500], (
        "the 3,100 bytes already received hold three full chunks of 1000: yield them without waiting for the end"
    )
