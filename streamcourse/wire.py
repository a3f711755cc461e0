"""Watch a response arrive: every chunk with its arrival time, and a picture of them.

The course's claims about streaming ("the first byte arrives long before the
last") are measured with this module on real sockets, never drawn by hand.
Times are seconds since the request was sent (``time.perf_counter``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

__all__ = ["Chunk", "Recording", "watch", "awatch", "timeline"]


@dataclass(frozen=True)
class Chunk:
    at: float  # seconds after the request was sent
    data: bytes


@dataclass
class Recording:
    """One response as it arrived."""

    label: str
    status: int = 0
    headers: dict[str, str] = field(default_factory=dict)
    headers_at: float = 0.0
    chunks: list[Chunk] = field(default_factory=list)
    done_at: float = 0.0

    @property
    def body(self) -> bytes:
        return b"".join(c.data for c in self.chunks)

    @property
    def first_byte(self) -> float:
        """Seconds until the first body byte (time to first byte)."""
        return self.chunks[0].at if self.chunks else self.done_at

    @property
    def last_byte(self) -> float:
        return self.chunks[-1].at if self.chunks else self.done_at

    def __str__(self) -> str:
        return (
            f"{self.label}: status {self.status}, {len(self.chunks)} chunks, {len(self.body)} bytes, "
            f"first byte {self.first_byte * 1000:.0f} ms, last byte {self.last_byte * 1000:.0f} ms"
        )


def watch(
    url: str, method: str = "GET", *, label: str | None = None, timeout: float = 30.0, **kwargs: Any
) -> Recording:
    """Send one request and record each body chunk as the socket delivers it."""
    rec = Recording(label or url)
    start = time.perf_counter()
    with httpx.Client(timeout=timeout) as client, client.stream(method, url, **kwargs) as response:
        _headers(rec, response, time.perf_counter() - start)
        for data in response.iter_raw():
            rec.chunks.append(Chunk(time.perf_counter() - start, data))
    rec.done_at = time.perf_counter() - start
    return rec


async def awatch(
    url: str,
    method: str = "GET",
    *,
    label: str | None = None,
    timeout: float = 30.0,
    on_chunk: Callable[[Chunk], None] | None = None,
    **kwargs: Any,
) -> Recording:
    """:func:`watch` for async code (a notebook cell can ``await`` it); ``on_chunk`` sees each chunk as it comes."""
    rec = Recording(label or url)
    start = time.perf_counter()
    async with httpx.AsyncClient(timeout=timeout) as client, client.stream(method, url, **kwargs) as response:
        _headers(rec, response, time.perf_counter() - start)
        async for data in response.aiter_raw():
            rec.chunks.append(Chunk(time.perf_counter() - start, data))
            if on_chunk is not None:
                on_chunk(rec.chunks[-1])
    rec.done_at = time.perf_counter() - start
    return rec


def _headers(rec: Recording, response: httpx.Response, at: float) -> None:
    rec.status = response.status_code
    rec.headers = dict(response.headers)
    rec.headers_at = at


def timeline(*recordings: Recording, title: str = "When the bytes arrived", ax: Any = None) -> Any:
    """Draw one row per recording: a dot per chunk, the wait before the first byte shaded."""
    import matplotlib.pyplot as plt

    if ax is None:
        fig, ax = plt.subplots(figsize=(8, 0.9 + 0.7 * len(recordings)))
    else:
        fig = ax.figure
    for row, rec in enumerate(reversed(recordings)):
        ax.barh(row, rec.first_byte, left=0, height=0.35, color="#e8e8e8", edgecolor="#bbbbbb")
        times = [c.at for c in rec.chunks]
        ax.plot(times, [row] * len(times), "|", markersize=18, markeredgewidth=2, color="#1f6feb")
        ax.annotate(
            f"first byte {rec.first_byte * 1000:.0f} ms", (rec.first_byte, row + 0.28), fontsize=8, color="#444444"
        )
        ax.annotate(
            f"last {rec.last_byte * 1000:.0f} ms", (rec.last_byte, row - 0.42), fontsize=8, color="#444444", ha="right"
        )
    ax.set_yticks(range(len(recordings)), [r.label for r in reversed(recordings)])
    ax.set_ylim(-0.7, len(recordings) - 0.3)
    ax.set_xlim(0, 1.2 * max((r.last_byte for r in recordings), default=1.0) or 1.0)
    ax.set_xlabel("seconds after the request was sent (grey: waiting for the first byte; blue: a chunk arrived)")
    ax.set_title(title)
    fig.tight_layout()
    return fig
