"""Notebook views of a stream: tokens arriving with a Stop button, and raw bytes beside events.

``TokenView`` consumes an async iterator of text pieces in a task on the kernel's
own event loop and shows each piece as it arrives. Its Stop button cancels that
task: the ``async for`` is interrupted at its ``await``, so an HTTP stream being
read closes its connection and the server on the other side sees the client leave.

``WireView`` shows one response twice: every chunk of bytes as the socket
delivered it, and — beside it — the SSE events that chunk completed.
"""

from __future__ import annotations

import asyncio
import codecs
import html
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import ipywidgets as w

from streamcourse.wire import Chunk, awatch

__all__ = ["TokenView", "WireView", "SSEvent", "parse_lines"]


class TokenView:
    """Live text of a token stream, with a Stop button that cancels the stream."""

    def __init__(self, title: str = "reply") -> None:
        self.text = ""
        self.tokens = 0
        self.started = 0.0
        self.first_token_at: float | None = None  # seconds after start
        self.ended_at: float | None = None
        self.outcome = "not started"  # "streaming", "finished", "stopped", "failed: ..."
        self._task: asyncio.Task[None] | None = None
        self._title = w.HTML(f"<b>{html.escape(title)}</b>")
        self._body = w.HTML(self._render())
        self._status = w.HTML("not started")
        self.button = w.Button(description="Stop", icon="stop", button_style="danger", disabled=True)
        self.button.on_click(lambda _: self.stop())
        self.widget = w.VBox([w.HBox([self._title, self.button, self._status]), self._body])

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)

    def _render(self) -> str:
        return (
            "<div style='font-family:monospace;white-space:pre-wrap;border:1px solid #ddd;"
            f"padding:6px;min-height:3em'>{html.escape(self.text)}</div>"
        )

    def _update(self) -> None:
        self._body.value = self._render()
        ttft = "—" if self.first_token_at is None else f"{self.first_token_at * 1000:.0f} ms"
        took = time.perf_counter() - self.started if self.ended_at is None else self.ended_at
        self._status.value = f"&nbsp;{self.outcome} · {self.tokens} tokens · first token {ttft} · {took:.2f} s"

    def start(self, pieces: AsyncIterator[str]) -> asyncio.Task[None]:
        """Show ``pieces`` as they arrive, in a task on the running loop; returns that task."""
        self.stop()
        self.text, self.tokens, self.first_token_at, self.ended_at = "", 0, None, None
        self.started = time.perf_counter()
        self.outcome = "streaming"
        self.button.disabled = False
        self._task = asyncio.get_running_loop().create_task(self._consume(pieces))
        return self._task

    async def _consume(self, pieces: AsyncIterator[str]) -> None:
        try:
            async for piece in pieces:
                if self.first_token_at is None:
                    self.first_token_at = time.perf_counter() - self.started
                self.text += piece
                self.tokens += 1
                self._update()
            self.outcome = "finished"
        except asyncio.CancelledError:
            self.outcome = "stopped"
            raise
        except Exception as exc:  # noqa: BLE001 - not swallowed: the view shows it as the outcome
            self.outcome = f"failed: {type(exc).__name__}: {exc}"
        finally:
            aclose = getattr(pieces, "aclose", None)
            if aclose is not None:  # close the source (and its connection) however we ended
                await asyncio.shield(aclose())
            self.ended_at = time.perf_counter() - self.started
            self.button.disabled = True
            self._update()

    def stop(self) -> None:
        """What the Stop button does: cancel the task reading the stream."""
        if self._task is not None and not self._task.done():
            self._task.cancel()

    async def wait(self, timeout: float = 30.0) -> None:
        """Wait until the stream has finished or been stopped."""
        if self._task is not None:
            await asyncio.wait([self._task], timeout=timeout)


@dataclass
class SSEvent:
    event: str = "message"
    data: str = ""
    id: str | None = None
    comment: bool = False


def parse_lines(lines: list[str], pending: dict[str, Any]) -> list[SSEvent]:
    """Feed complete lines to a small event-stream parser; ``pending`` carries the event being built."""
    out: list[SSEvent] = []
    for line in lines:
        if line == "":
            if pending.get("data") is not None:
                out.append(SSEvent(pending.get("event") or "message", "\n".join(pending["data"]), pending.get("id")))
            pending.clear()
        elif line.startswith(":"):
            out.append(SSEvent("", line[1:].removeprefix(" "), comment=True))
        else:
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if name == "data":
                pending.setdefault("data", []).append(value)
            elif name in ("event", "id"):
                pending[name] = value
    return out


class _Lines:
    """Complete lines out of byte chunks (CR, LF or CRLF; a CR at a chunk's end waits for a possible LF).

    The view splits lines itself because it shows which lines EACH chunk completed,
    and httpx-sse's line decoder is private (``httpx_sse._decoders``).
    """

    def __init__(self) -> None:
        self.decoder = codecs.getincrementaldecoder("utf-8")()
        self.pending = ""

    def feed(self, raw: bytes) -> list[str]:
        self.pending += self.decoder.decode(raw)
        cut = len(self.pending) - 1 if self.pending.endswith("\r") else len(self.pending)
        *lines, rest = re.split(r"\r\n|\r|\n", self.pending[:cut])
        self.pending = rest + self.pending[cut:]
        return lines


@dataclass
class _Row:
    at: float
    raw: bytes
    events: list[SSEvent] = field(default_factory=list)


class WireView:
    """Raw chunks (left) beside the SSE events each chunk completed (right)."""

    def __init__(self) -> None:
        self.rows: list[_Row] = []
        self.widget = w.HTML(self._render())

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)

    @property
    def events(self) -> list[SSEvent]:
        return [e for row in self.rows for e in row.events]

    async def record(self, url: str, method: str = "GET", *, timeout: float = 30.0, **kwargs: Any) -> WireView:
        """Read one response with :func:`streamcourse.wire.awatch`, updating the view at every chunk."""
        self.rows.clear()
        lines, pending = _Lines(), dict[str, Any]()

        def show(chunk: Chunk) -> None:
            self.rows.append(_Row(chunk.at, chunk.data, parse_lines(lines.feed(chunk.data), pending)))
            self.widget.value = self._render()

        headers = {"Accept": "text/event-stream", **kwargs.pop("headers", {})}
        await awatch(url, method, timeout=timeout, headers=headers, on_chunk=show, **kwargs)
        return self

    def _render(self) -> str:
        cell = "style='border:1px solid #ddd;padding:3px 6px;vertical-align:top;font-family:monospace;font-size:12px'"
        rows = []
        for row in self.rows:
            events = "<br>".join(
                f"<i>comment</i> {html.escape(e.data)}"
                if e.comment
                else f"<b>{html.escape(e.event)}</b> {html.escape(e.data)}"
                for e in row.events
            )
            rows.append(
                f"<tr><td {cell}>{row.at * 1000:.0f} ms</td><td {cell}>{html.escape(repr(row.raw))}</td><td {cell}>{events}</td></tr>"
            )
        head = f"<tr><th {cell}>arrived</th><th {cell}>bytes on the wire</th><th {cell}>events completed</th></tr>"
        return f"<table style='border-collapse:collapse'>{head}{''.join(rows)}</table>"

    def _repr_html_(self) -> str:
        return self._render()
