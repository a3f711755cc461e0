"""What the embedded server did for each request, and the paced producer that writes it down.

The record is the evidence the cancellation checks read: every piece produced and
when, when the server saw the client leave, when the producer closed. It is kept
in the server's process and read from the check's thread, hence the Event.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field

__all__ = ["ToolCall", "Generation", "Piece", "Plan", "MidstreamFault", "produce", "MIDSTREAM_MESSAGE"]

MIDSTREAM_MESSAGE = "The server had an error while processing your request (simulated mid-stream failure)."


@dataclass
class ToolCall:
    """A call the model decided to make: what a check compares the client's result with."""

    index: int
    call_id: str  # ``id`` in Chat Completions, ``call_id`` in the Responses API
    item_id: str  # the Responses API's output item id (``fc_...``)
    name: str
    arguments: str  # the whole JSON text, before it is cut into fragments


@dataclass
class Generation:
    """What the server did for one request: the evidence a cancellation check reads."""

    id: str
    api: str  # "chat.completions" or "responses"
    model: str
    prompt: str
    stream: bool
    fault: str | None = None
    started: float = field(default_factory=time.monotonic)
    tokens: list[str] = field(default_factory=list)  # text pieces, or argument fragments of tool calls
    token_times: list[float] = field(default_factory=list)
    client_gone_at: float | None = None  # when the server noticed the client had left
    finished: bool = False  # every planned token was produced (normal end)
    closed_at: float | None = None  # when the token generator's ``finally`` ran
    calls: list[ToolCall] = field(default_factory=list)  # the tool calls planned (empty for a text reply)
    _closed: threading.Event = field(default_factory=threading.Event, repr=False)

    @property
    def tokens_sent(self) -> int:
        return len(self.tokens)

    @property
    def text(self) -> str:
        return "".join(self.tokens)

    @property
    def tokens_after_disconnect(self) -> int:
        """Tokens produced after the client left: 0 when cancellation reached the generator."""
        if self.client_gone_at is None:
            return 0
        return sum(1 for t in self.token_times if t > self.client_gone_at)

    def wait_closed(self, timeout: float) -> bool:
        """Block until the generator has closed (checks run in another thread than the server)."""
        return self._closed.wait(timeout)

    async def wait_closed_async(self, timeout: float) -> bool:
        """:meth:`wait_closed` for async code, without blocking the caller's event loop."""
        return await asyncio.to_thread(self._closed.wait, timeout)

    def __repr__(self) -> str:
        gone = "no" if self.client_gone_at is None else f"+{self.client_gone_at - self.started:.3f}s"
        closed = "no" if self.closed_at is None else f"+{self.closed_at - self.started:.3f}s"
        calls = f" calls={[c.name for c in self.calls]}" if self.calls else ""
        return (
            f"<Generation {self.id} {self.api}{calls} tokens_sent={self.tokens_sent} finished={self.finished} "
            f"client_gone={gone} tokens_after_disconnect={self.tokens_after_disconnect} closed={closed}>"
        )

    def mark_client_left(self) -> None:
        """Note the first sign that nobody is listening (a disconnect, or a cancel at an await)."""
        if self.client_gone_at is None and self.closed_at is None:
            self.client_gone_at = time.monotonic()

    def mark_closed(self) -> None:
        if self.closed_at is None:
            self.closed_at = time.monotonic()
        self._closed.set()


@dataclass(frozen=True)
class Piece:
    """One paced step of a reply: a word of text, or a fragment of a tool call's arguments."""

    text: str
    call: int | None = None  # None: message content; otherwise the index of the tool call


@dataclass
class Plan:
    """Everything the reply will be, decided before the first byte."""

    pieces: list[Piece]
    finish_reason: str  # "stop", "length" or "tool_calls"
    ttft: float
    token_interval: float
    fault: str | None
    fault_after: int  # pieces sent before a "midstream" error or a "stall"
    calls: list[ToolCall] = field(default_factory=list)

    def arguments(self, produced: int) -> dict[int, str]:
        """Each call's arguments as far as the first ``produced`` pieces go."""
        out = {c.index: "" for c in self.calls}
        for piece in self.pieces[:produced]:
            if piece.call is not None:
                out[piece.call] += piece.text
        return out

    def last_piece_of(self, call: int) -> int:
        return max(i for i, p in enumerate(self.pieces) if p.call == call)


class MidstreamFault(Exception):
    """Raised by the producer when the request asked for an error mid-stream."""


async def produce(gen: Generation, plan: Plan) -> AsyncGenerator[Piece, None]:
    """Produce the reply's pieces at the planned pace, recording each one and how it ended."""
    try:
        for i, piece in enumerate(plan.pieces):
            await asyncio.sleep(plan.ttft if i == 0 else plan.token_interval)
            if plan.fault in ("midstream", "stall") and i == plan.fault_after:
                if plan.fault == "stall":
                    await asyncio.Event().wait()  # silent until the client leaves
                raise MidstreamFault(MIDSTREAM_MESSAGE)
            gen.token_times.append(time.monotonic())
            gen.tokens.append(piece.text)
            yield piece
        gen.finished = True
    except (asyncio.CancelledError, GeneratorExit):
        gen.mark_client_left()  # cancelled at an await, or closed at a yield: nobody is listening
        raise
    finally:
        gen.mark_closed()
