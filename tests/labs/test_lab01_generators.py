"""Checks for lab 01 — generators: ``read_chunks`` and ``batched``.

Each check states in its assertion message what was expected, in words a
learner can act on; the known wrong answers live in ``wrong/lab01.*``.
"""

from __future__ import annotations

import array
import fcntl
import itertools
import os
import termios
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import psutil
import pytest

from streamcourse import harness
from streamcourse.checking import within
from streamcourse.memory import peak_memory_growth

READ = "lab01.read_chunks"
BATCH = "lab01.batched"


# --------------------------------------------------------------------------- read_chunks


@pytest.fixture
def data_file(tmp_path: Path) -> Path:
    path = tmp_path / "data.bin"
    path.write_bytes(bytes(range(256)) * 1000 + b"tail")  # 256,004 bytes
    return path


def all_read(submission, path: Path, size: int) -> list[bytes]:
    """Every chunk ``read_chunks`` gives for ``path``; a failure, not a hang, if it reads on past the end."""
    most = path.stat().st_size // size + 1
    chunks = within(5, lambda: list(itertools.islice(submission.read_chunks(path, size), most + 1)), what="read_chunks")
    assert len(chunks) <= most, (
        f"read_chunks gave more than the {most} chunks a {path.stat().st_size}-byte file holds: "
        "stop when f.read() returns b'' (the end of the file)"
    )
    return chunks


@pytest.mark.exercise(READ)
def test_chunks_join_to_the_whole_file(submission, data_file: Path) -> None:
    chunks = all_read(submission, data_file, 10_000)
    assert b"".join(chunks) == data_file.read_bytes(), "joined together, the chunks must equal the file's bytes"


@pytest.mark.exercise(READ)
def test_every_chunk_but_the_last_has_the_asked_size(submission, data_file: Path) -> None:
    chunks = all_read(submission, data_file, 10_000)
    sizes = [len(c) for c in chunks]
    assert all(isinstance(c, bytes) for c in chunks), "yield bytes (open the file in binary mode, 'rb')"
    assert sizes[:-1] == [10_000] * (len(sizes) - 1) and 0 < sizes[-1] <= 10_000, (
        f"expected chunks of 10000 bytes and a shorter last one; got sizes {sizes[:3]}…{sizes[-2:]}"
    )


@pytest.mark.exercise(READ)
def test_an_empty_file_gives_no_chunks(submission, tmp_path: Path) -> None:
    empty = tmp_path / "empty.bin"
    empty.write_bytes(b"")
    chunks = within(5, lambda: list(itertools.islice(submission.read_chunks(empty, 1024), 2)), what="read_chunks")
    assert chunks == [], f"an empty file has no chunks (not even b''); got {chunks!r}"


def waits_for_more(process: psutil.Process, fifo: Path, pipe: BinaryIO) -> str:
    """Why a reader can never give its first chunk: it read all the writer gave and waits in read() for more.

    Seen from outside: the pipe is empty (FIONREAD on the writer's end) and a
    thread of ``process`` sleeps in the kernel's pipe read on the FIFO's inode.
    Where /proc does not say (another kernel, no permission), "" — the check's
    own deadline still decides.
    """
    left = array.array("i", [0])
    fcntl.ioctl(pipe.fileno(), termios.FIONREAD, left)
    if left[0]:
        return ""
    inode = os.stat(fifo).st_ino
    for task in Path(f"/proc/{process.pid}/task").iterdir():
        try:
            if "pipe_read" in (task / "wchan").read_text():
                fd = int((task / "syscall").read_text().split()[1], 16)
                if os.stat(f"/proc/{process.pid}/fd/{fd}").st_ino == inode:
                    return "it read all 64 KiB the pipe held and waits for more before its first chunk: read size bytes"
        except (OSError, ValueError, IndexError):
            continue
    return ""


@pytest.mark.exercise(READ)
def test_first_chunk_arrives_while_the_input_is_still_being_written(submission, tmp_path: Path) -> None:
    """A FIFO never ends until its writer closes it: only a lazy reader gets a first chunk."""
    fifo = tmp_path / "endless.fifo"
    os.mkfifo(fifo)
    release, written = threading.Event(), threading.Event()
    pipes: list[BinaryIO] = []

    def writer() -> None:
        with open(fifo, "wb") as pipe:
            pipe.write(b"x" * 65_536)
            pipe.flush()
            pipes.append(pipe)
            written.set()
            release.wait(10)

    def hopeless() -> str:
        return waits_for_more(submission.process, fifo, pipes[0]) if written.is_set() else ""

    threading.Thread(target=writer, daemon=True).start()
    try:
        first = within(
            3,
            lambda: next(iter(submission.read_chunks(fifo, 1024))),
            what="getting the first chunk",
            hopeless=hopeless,
        )
        assert first == b"x" * 1024, "the first chunk should be the first 1024 bytes"
    finally:
        release.set()


@pytest.mark.exercise(READ)
def test_the_file_is_closed_as_soon_as_the_consumer_stops(submission, data_file: Path) -> None:
    chunks = submission.read_chunks(data_file, 1024)
    next(iter(chunks))
    opened = [f.path for f in submission.process.open_files()]
    assert str(data_file) in opened, "the file should be open while chunks are being read"
    assert hasattr(chunks, "close"), "return a generator (use `yield`) so the consumer can close() it"
    chunks.close()
    opened = [f.path for f in submission.process.open_files()]
    assert str(data_file) not in opened, (
        "after close() the file must be closed: open it with `with` inside the generator"
    )


# --------------------------------------------------------------------------- batched


class Guarded:
    """An endless source of rows that refuses to be read too far (a lazy batcher never gets there)."""

    def __init__(self, row: str = "row\n", limit: int = 200_000) -> None:
        self.row, self.limit, self.taken = row, limit, 0

    def __iter__(self) -> Iterator[str]:
        for _ in itertools.count():
            if self.taken >= self.limit:
                raise RuntimeError("read far too many rows: batched must not read ahead of what it yields")
            self.taken += 1
            yield self.row


def greedy(rows: list[str], max_bytes: int) -> list[str]:
    """The expected chunks: each as full as the next row allows, a long row on its own."""
    chunks: list[str] = []
    current, size = [], 0
    for row in rows:
        n = len(row.encode())
        if current and size + n > max_bytes:
            chunks.append("".join(current))
            current, size = [], 0
        current.append(row)
        size += n
    if current:
        chunks.append("".join(current))
    return chunks


def all_chunks(submission, rows: list[str], max_bytes: int) -> list[str]:
    """Every chunk ``batched`` gives for ``rows``; a failure, not a hang, if it never stops.

    ``rows`` goes over as a list (any iterable will do, the exercise says): when
    grading, an iterator would cross the channel one row at a time.
    """
    got = within(
        5, lambda: list(itertools.islice(submission.batched(list(rows), max_bytes), len(rows) + 1)), what="batched"
    )
    assert len(got) <= len(rows), (
        f"batched gave more chunks than the {len(rows)} rows it was given: stop when the rows run out"
    )
    return got


@pytest.mark.exercise(BATCH)
def test_batched_is_lazy_on_an_endless_input(submission) -> None:
    source = Guarded()
    first = within(3, lambda: list(itertools.islice(submission.batched(source, 40), 3)), what="batched")
    assert first == ["row\n" * 10] * 3, "chunks of 40 bytes from 4-byte rows hold 10 rows each"
    assert source.taken <= 35, f"batched read {source.taken} rows to make 3 chunks of 10: read only what you need"


@pytest.mark.exercise(BATCH)
def test_batched_fills_each_chunk_up_to_the_byte_limit(submission) -> None:
    rows = [f"{i},user_{i},{i * 0.5}\n" for i in range(300)]
    got = all_chunks(submission, rows, 256)
    assert "".join(got) == "".join(rows), "joined together, the chunks must equal the rows in order"
    assert got == greedy(rows, 256), (
        "each chunk should hold as many whole rows as fit in max_bytes (not one row per chunk, never over the limit)"
    )


@pytest.mark.exercise(BATCH)
def test_batched_counts_utf8_bytes_not_characters(submission) -> None:
    rows = ["café,☕,ünïcödé\n"] * 60 + ["😀\n"] * 30
    got = all_chunks(submission, rows, 100)
    sizes = [len(c.encode("utf-8")) for c in got]
    assert max(sizes) <= 100, (
        f"a chunk was {max(sizes)} UTF-8 bytes with max_bytes=100: count bytes with len(row.encode()), not len(row)"
    )
    assert got == greedy(rows, 100), "each chunk should hold as many whole rows as fit in max_bytes"


@pytest.mark.exercise(BATCH)
def test_a_row_longer_than_the_limit_is_a_chunk_of_its_own(submission) -> None:
    rows = ["a\n", "b" * 50 + "\n", "c\n"]
    got = all_chunks(submission, rows, 10)
    assert got == ["a\n", "b" * 50 + "\n", "c\n"], f"a long row is never split or merged; got {got!r}"


@pytest.mark.exercise(BATCH)
def test_no_rows_give_no_chunks(submission) -> None:
    got = within(5, lambda: list(itertools.islice(submission.batched(iter([]), 10), 2)), what="batched")
    assert got == [], f"no rows give no chunks (not an empty string); got {got!r}"


WIDTH = 40  # short rows: a list of them holds twice their bytes, so code that keeps them shows it
CHUNK = 256 * 1024  # few chunks cross the grader's channel; one chunk is the same in both runs, so memory still tells


@pytest.mark.exercise(BATCH)
def test_memory_stays_flat_as_the_input_grows(submission) -> None:
    def peak(n: int) -> int:
        rows = submission.build(harness.numbered_rows, n, WIDTH)  # made where the learner's code runs
        submission.build(harness.release_free_memory)

        longest = WIDTH + 8  # "<i>," + WIDTH x + "\n", i below 10 million
        most = n * longest // (CHUNK - longest) + 2  # a chunk that is not the last is nearly full
        size = (WIDTH + 3) * n + sum(max(0, n - 10**k) for k in range(1, 12))  # every row's bytes, digits counted

        def run() -> None:
            carried = 0
            for count, chunk in enumerate(submission.batched(rows, CHUNK)):
                assert count < most, f"batched gave more than the {most} chunks {n} rows can fill: chunks must be full"
                assert type(chunk) is str, f"chunks must be strings, not {type(chunk).__name__}"
                carried += len(chunk)
            assert carried == size, f"the chunks of {n} rows carried {carried} characters, not the rows' {size}"

        return peak_memory_growth(submission.process, run)

    small, large = within(30, lambda: (peak(10_000), peak(100_000)), what="batched")
    assert large < small + 2 * 1024 * 1024, (
        f"peak memory grew from {small // 1024} KiB (10k rows) to {large // 1024} KiB (100k rows): "
        "keep only the current chunk in memory, never the whole input"
    )
