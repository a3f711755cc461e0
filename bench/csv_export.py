"""CSV export through ``StreamingResponse``: one ``yield`` per row against ~64 KiB chunks.

Run it from the repository root with the project's Python::

    python bench/csv_export.py              # 100k and 1M rows (about a minute)
    python bench/csv_export.py 20000 200000 # other sizes: small, large

Every measurement starts a fresh server in a SUBPROCESS (uvicorn, as in
production), streams the export over a real socket to a client that counts
the bytes and keeps none of them, then asks the server for its own peak
resident memory (``VmHWM``: the high-water mark of that process only,
so the client's memory is never counted). The three ways the server makes
the same CSV (same rows, same ``csv.writer``):

- ``per-row``   sync generator, one ``yield`` per row (the common version);
- ``per-row-async`` the same rows from an async generator: no thread hop per
  row, still one ``send`` per row (separates the two costs of per-row);
- ``batched``   sync generator, rows packed into ~64 KiB chunks;
- ``buffered``  the whole CSV built in memory and sent as one ``Response``
  (only to show that the memory measurement does see growth).

Targets: batched ≥ 10× the rows/s of per-row; batched and per-row peak memory
flat within 20 MB from 100k to 1M rows.
"""

from __future__ import annotations

import csv
import io
import json
import resource
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator

import httpx

CHUNK_BYTES = 64 * 1024
MODES = ("per-row", "per-row-async", "batched", "buffered")
TARGET_RATIO = 10.0
TARGET_FLAT_MB = 20.0


# --------------------------------------------------------------------------- the server (child process)


def rows(n: int) -> Iterator[tuple[int, str, float]]:
    for i in range(1, n + 1):
        yield (i, f"user_{i}", i * 0.5)


def per_row(n: int) -> Iterator[str]:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(("id", "name", "score"))
    for row in rows(n):
        writer.writerow(row)
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
    yield buffer.getvalue()


async def per_row_async(n: int) -> AsyncIterator[str]:
    for line in per_row(n):
        yield line


def batched(n: int, chunk_bytes: int = CHUNK_BYTES) -> Iterator[str]:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(("id", "name", "score"))
    for row in rows(n):
        writer.writerow(row)
        if buffer.tell() >= chunk_bytes:  # characters; this CSV is ASCII, so also bytes
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


def make_app():  # type: ignore[no-untyped-def]
    from fastapi import FastAPI
    from fastapi.responses import Response, StreamingResponse

    app = FastAPI()
    headers = {"Content-Disposition": 'attachment; filename="export.csv"'}

    @app.get("/export")
    def export(n: int, mode: str) -> Response:
        if mode == "per-row":
            return StreamingResponse(per_row(n), media_type="text/csv", headers=headers)
        if mode == "per-row-async":
            return StreamingResponse(per_row_async(n), media_type="text/csv", headers=headers)
        if mode == "batched":
            return StreamingResponse(batched(n), media_type="text/csv", headers=headers)
        return Response("".join(per_row(n)), media_type="text/csv", headers=headers)

    @app.get("/peak")
    def peak() -> dict[str, int]:
        return {"max_rss_kib": peak_rss_kib()}

    return app


def peak_rss_kib() -> int:
    """This process's own high-water RSS (VmHWM). Not getrusage's ru_maxrss: Linux carries
    that over from the parent across fork+exec, so a child of a big process reports the
    parent's peak and its own growth disappears."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # not Linux: the best there is


def serve_child() -> None:
    """Child process: bind a free port, print it, serve until killed."""
    import uvicorn

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    print(sock.getsockname()[1], flush=True)
    uvicorn.Server(uvicorn.Config(make_app(), log_level="warning")).run(sockets=[sock])


# --------------------------------------------------------------------------- the client (this process)


def wait_until_up(client: httpx.Client, base: str) -> int:
    """The child prints its port before uvicorn listens: retry briefly; return its peak RSS (KiB)."""
    deadline = time.monotonic() + 30
    while True:
        try:
            return client.get(f"{base}/peak").json()["max_rss_kib"]
        except httpx.ConnectError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def measure(mode: str, n: int) -> dict[str, float]:
    """One export from a fresh server process: rows/s and the server's peak RSS."""
    child = subprocess.Popen([sys.executable, __file__, "--serve"], stdout=subprocess.PIPE, text=True)
    try:
        port = int(child.stdout.readline())  # type: ignore[union-attr]
        base = f"http://127.0.0.1:{port}"
        with httpx.Client(timeout=600) as client:
            before = wait_until_up(client, base)
            size = 0
            started = time.perf_counter()
            with client.stream("GET", f"{base}/export", params={"n": n, "mode": mode}) as response:
                first = 0.0
                for data in response.iter_raw():
                    first = first or time.perf_counter() - started
                    size += len(data)
            seconds = time.perf_counter() - started
            after = client.get(f"{base}/peak").json()["max_rss_kib"]
    finally:
        child.terminate()
        child.wait(10)
    return {
        "rows_per_s": n / seconds,
        "seconds": seconds,
        "first_byte_ms": first * 1000,
        "bytes": size,
        "peak_mb": after / 1024,
        "grew_mb": (after - before) / 1024,
    }


def main(small: int = 100_000, large: int = 1_000_000) -> int:
    results: dict[tuple[str, int], dict[str, float]] = {}
    print(
        f"{'mode':<14}{'rows':>10}{'seconds':>9}{'rows/s':>12}{'first byte':>12}{'server peak RSS':>17}{'grew during export':>20}"
    )
    for mode in MODES:
        for n in (small, large):
            r = results[mode, n] = measure(mode, n)
            print(
                f"{mode:<14}{n:>10,}{r['seconds']:>9.2f}{r['rows_per_s']:>12,.0f}{r['first_byte_ms']:>10.0f} ms"
                f"{r['peak_mb']:>14.1f} MB{r['grew_mb']:>17.1f} MB",
                flush=True,
            )
    ratio = results["batched", large]["rows_per_s"] / results["per-row", large]["rows_per_s"]
    print(f"\nbatched / per-row throughput at {large:,} rows: {ratio:.1f}x (target >= {TARGET_RATIO:g}x)")
    ok = ratio >= TARGET_RATIO
    for mode in MODES:
        growth = results[mode, large]["peak_mb"] - results[mode, small]["peak_mb"]
        flat = growth <= TARGET_FLAT_MB
        if mode.startswith(("per-row", "batched")):
            ok &= flat
        print(
            f"{mode:<14} server peak RSS {small:,} -> {large:,} rows: {growth:+.1f} MB ({'flat' if flat else 'GROWS'})"
        )
    print(json.dumps({f"{m} {n}": r for (m, n), r in results.items()}), file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    if sys.argv[1:] == ["--serve"]:
        serve_child()
    else:
        sys.exit(main(*(int(a) for a in sys.argv[1:3])))
