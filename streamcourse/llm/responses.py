"""The Responses API wire format: the response object, and its stream of named events.

Every event is ``event: <type>`` plus ``data: {...}`` with a ``sequence_number``:
``response.created`` and ``.in_progress``, then per output item
``response.output_item.added`` … ``response.output_item.done``, and at the end
``response.completed`` (or ``.incomplete``, or ``.failed`` for an error mid-stream).
A message item carries ``response.content_part.added`` / ``response.output_text.delta``
/ ``.done`` / ``response.content_part.done``; a function-call item carries
``response.function_call_arguments.delta`` fragments and one ``.done`` with the
whole arguments. Timestamps are integer seconds.
"""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import AsyncIterator
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import Any

from streamcourse.llm.record import Generation, MidstreamFault, Plan, ToolCall, produce

__all__ = ["Reply", "body", "final", "events"]


@dataclass
class Reply:
    """What one response repeats in every lifecycle event."""

    gen: Generation
    plan: Plan
    request: dict[str, Any]
    prompt_tokens: int
    created_at: int = field(default_factory=lambda: int(time.time()))

    @property
    def message_id(self) -> str:
        return "msg_" + self.gen.id.removeprefix("resp_")

    @property
    def status(self) -> str:
        return "incomplete" if self.plan.finish_reason == "length" else "completed"


def body(reply: Reply, status: str, output: list[Any], **extra: Any) -> dict[str, Any]:
    """The response object in a given state (``usage`` only once it is over)."""
    gen, request = reply.gen, reply.request
    used = {
        "input_tokens": reply.prompt_tokens,
        "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
        "output_tokens": gen.tokens_sent,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": reply.prompt_tokens + gen.tokens_sent,
    }
    return {
        "id": gen.id,
        "object": "response",
        "created_at": reply.created_at,
        "status": status,
        "completed_at": int(time.time()) if status == "completed" else None,
        "error": None,
        "incomplete_details": None,
        "instructions": request.get("instructions"),
        "max_output_tokens": request.get("max_output_tokens"),
        "model": gen.model,
        "output": output,
        "parallel_tool_calls": request.get("parallel_tool_calls", True),
        "previous_response_id": None,
        "temperature": 1.0,
        "text": request.get("text") or {"format": {"type": "text"}},
        "tool_choice": request.get("tool_choice", "auto"),
        "tools": request.get("tools") or [],
        "top_p": 1.0,
        "truncation": "disabled",
        "usage": None if status == "in_progress" else used,
        "metadata": {},
        **extra,
    }


def _call_item(call: ToolCall, arguments: str, status: str) -> dict[str, Any]:
    return {
        "id": call.item_id,
        "type": "function_call",
        "status": status,
        "arguments": arguments,
        "call_id": call.call_id,
        "name": call.name,
    }


def _message_item(reply: Reply, text: str, status: str) -> dict[str, Any]:
    part = {"type": "output_text", "annotations": [], "logprobs": [], "text": text}
    content = [] if status == "in_progress" else [part]
    return {"id": reply.message_id, "type": "message", "status": status, "content": content, "role": "assistant"}


def final(reply: Reply) -> dict[str, Any]:
    """The finished response: every output item complete (or cut at the token limit)."""
    status = reply.status
    if reply.plan.calls:
        arguments = reply.plan.arguments(reply.gen.tokens_sent)
        output = [_call_item(c, arguments[c.index], status) for c in reply.plan.calls]
    else:
        output = [_message_item(reply, reply.gen.text, status)]
    extra = {"incomplete_details": {"reason": "max_output_tokens"}} if status == "incomplete" else {}
    return body(reply, status, output, **extra)


def _dumps(data: Any) -> str:
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"))


Events = list[tuple[str, dict[str, Any]]]


def _text_opening(reply: Reply) -> Events:
    where = {"item_id": reply.message_id, "output_index": 0, "content_index": 0}
    return [
        ("response.output_item.added", {"output_index": 0, "item": _message_item(reply, "", "in_progress")}),
        (
            "response.content_part.added",
            {**where, "part": {"type": "output_text", "annotations": [], "logprobs": [], "text": ""}},
        ),
    ]


def _text_closing(reply: Reply, done: dict[str, Any]) -> Events:
    where = {"item_id": reply.message_id, "output_index": 0, "content_index": 0}
    item = done["output"][0]
    return [
        ("response.output_text.done", {**where, "text": reply.gen.text, "logprobs": []}),
        ("response.content_part.done", {**where, "part": item["content"][0]}),
        ("response.output_item.done", {"output_index": 0, "item": item}),
    ]


def _call_events(reply: Reply, index: int, fragment: str, position: int, added: set[int]) -> Events:
    """The events one argument fragment brings: its item's opening the first time, its closing the last."""
    call = reply.plan.calls[index]
    where = {"item_id": call.item_id, "output_index": call.index}
    out: Events = []
    if call.index not in added:
        added.add(call.index)
        out.append(
            ("response.output_item.added", {"output_index": call.index, "item": _call_item(call, "", "in_progress")})
        )
    out.append(("response.function_call_arguments.delta", {**where, "delta": fragment}))
    if position == reply.plan.last_piece_of(call.index):
        arguments = reply.plan.arguments(position + 1)[call.index]
        out.append(("response.function_call_arguments.done", {**where, "arguments": arguments}))
        out.append(
            (
                "response.output_item.done",
                {"output_index": call.index, "item": _call_item(call, arguments, "completed")},
            )
        )
    return out


async def events(reply: Reply) -> AsyncIterator[str]:
    """The streamed response, one named SSE event at a time, paced by :func:`produce`."""
    seq = itertools.count()

    def event(type_: str, fields: dict[str, Any]) -> str:
        return f"event: {type_}\ndata: {_dumps({'type': type_, 'sequence_number': next(seq), **fields})}\n\n"

    yield event("response.created", {"response": body(reply, "in_progress", [])})
    yield event("response.in_progress", {"response": body(reply, "in_progress", [])})
    calls, added = bool(reply.plan.calls), set[int]()
    for opening in [] if calls else _text_opening(reply):
        yield event(*opening)
    where = {"item_id": reply.message_id, "output_index": 0, "content_index": 0}
    try:
        async with aclosing(produce(reply.gen, reply.plan)) as pieces:
            position = 0
            async for piece in pieces:
                if piece.call is not None:
                    for step in _call_events(reply, piece.call, piece.text, position, added):
                        yield event(*step)
                else:
                    yield event("response.output_text.delta", {**where, "delta": piece.text, "logprobs": []})
                position += 1
    except MidstreamFault as exc:  # the terminal lifecycle event of a failed response
        error = {"code": "server_error", "message": str(exc)}
        yield event("response.failed", {"response": body(reply, "failed", [], error=error)})
        return
    done = final(reply)
    for closing in [] if calls else _text_closing(reply, done):
        yield event(*closing)
    yield event(f"response.{reply.status}", {"response": done})
