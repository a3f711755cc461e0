"""bench/csv_export.py runs, measures the server in its own process, and shows what it claims.

Small sizes and generous bounds: this pins the bench's behaviour, not the machine's speed.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench" / "csv_export.py"


def load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("csv_export_bench", BENCH)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    return load()


def test_every_mode_makes_the_same_csv(bench: ModuleType) -> None:
    per_row = "".join(bench.per_row(5_000))
    assert "".join(bench.batched(5_000)) == per_row
    assert per_row.startswith("id,name,score\r\n1,user_1,0.5\r\n")


def test_batched_chunks_are_about_64_kib(bench: ModuleType) -> None:
    sizes = [len(chunk) for chunk in bench.batched(50_000)]
    assert all(bench.CHUNK_BYTES <= s < bench.CHUNK_BYTES + 100 for s in sizes[:-1])


def test_batched_is_faster_and_streaming_memory_stays_flat(bench: ModuleType) -> None:
    per_row = bench.measure("per-row", 20_000)
    batched_small = bench.measure("batched", 20_000)
    batched_large = bench.measure("batched", 200_000)
    buffered_large = bench.measure("buffered", 200_000)
    assert batched_small["rows_per_s"] > 3 * per_row["rows_per_s"], (per_row, batched_small)
    assert batched_large["peak_mb"] - batched_small["peak_mb"] < 20, (batched_small, batched_large)
    assert buffered_large["grew_mb"] > batched_large["grew_mb"] + 5, (
        "the memory measurement should see the buffered export grow",
        batched_large,
        buffered_large,
    )
