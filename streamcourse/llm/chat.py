"""The Chat Completions wire format: the JSON body of a reply, and its stream of chunks.

A stream is ``data: {chunk}`` lines: the role chunk first (with the first token,
after the time to first token), one chunk per piece, a finish chunk, then — with
``stream_options.include_usage`` — a usage chunk whose ``choices`` is EMPTY, then
``data: [DONE]``. A tool call is announced once by a chunk carrying its ``index``,
``id``, ``type`` and ``function.name`` (and ``arguments: ""``); every later
fragment carries only ``index`` and ``function.arguments``. The finish reason of
a reply that calls tools is ``"tool_calls"``.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import Any

from streamcourse.llm.record import Generation, MidstreamFault, Piece, Plan, produce

__all__ = ["base", "usage", "completion", "chunks", "sse"]


def sse(payload: Any) -> str:
    """One ``data:`` event; non-ASCII travels as raw UTF-8, so it can be split across chunks."""
    return f"data: {json.dumps(payload, ensure_ascii=False, separators=(',', ':'))}\n\n"


def base(gen: Generation) -> dict[str, Any]:
    """The fields every chunk (and the whole reply) repeats; ``created`` in integer seconds."""
    return {
        "id": gen.id,
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": gen.model,
        "service_tier": "default",
        "system_fingerprint": None,
    }


def usage(prompt_tokens: int, completion_tokens: int) -> dict[str, Any]:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def completion(gen: Generation, plan: Plan, head: dict[str, Any], prompt_tokens: int) -> dict[str, Any]:
    """The non-streamed reply, made from what was produced (the same pieces a stream would carry)."""
    message: dict[str, Any] = {"role": "assistant", "content": gen.text, "refusal": None, "annotations": []}
    if plan.calls:
        arguments = plan.arguments(gen.tokens_sent)
        message["content"] = None
        message["tool_calls"] = [
            {"id": c.call_id, "type": "function", "function": {"name": c.name, "arguments": arguments[c.index]}}
            for c in plan.calls
        ]
    choice = {"index": 0, "message": message, "logprobs": None, "finish_reason": plan.finish_reason}
    return {**head, "object": "chat.completion", "choices": [choice], "usage": usage(prompt_tokens, gen.tokens_sent)}


def _announce(plan: Plan, index: int) -> dict[str, Any]:
    call = plan.calls[index]
    return {"index": index, "id": call.call_id, "type": "function", "function": {"name": call.name, "arguments": ""}}


def _delta(plan: Plan, piece: Piece, announced: set[int]) -> dict[str, Any]:
    """The delta that carries one piece, announcing its tool call the first time it appears."""
    if piece.call is None:
        return {"content": piece.text}
    calls: list[dict[str, Any]] = []
    if piece.call not in announced:
        announced.add(piece.call)
        calls.append(_announce(plan, piece.call))
    calls.append({"index": piece.call, "function": {"arguments": piece.text}})
    return {"tool_calls": calls}


async def chunks(
    gen: Generation, plan: Plan, head: dict[str, Any], prompt_tokens: int, include_usage: bool
) -> AsyncIterator[str]:
    """The streamed reply, one SSE event per chunk, paced by :func:`produce`."""

    def chunk(delta: dict[str, Any] | None, finish: str | None = None, **extra: Any) -> str:
        choices = [] if delta is None else [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]
        return sse({**head, "choices": choices, **({"usage": None} if include_usage else {}), **extra})

    role: dict[str, Any] | None = {"role": "assistant", "content": None if plan.calls else "", "refusal": None}
    announced: set[int] = set()
    try:
        async with aclosing(produce(gen, plan)) as pieces:
            async for piece in pieces:
                if role is not None and plan.calls:  # the first call is announced in the role chunk itself
                    announced.add(0)
                    yield chunk({**role, "tool_calls": [_announce(plan, 0)]})
                elif role is not None:  # the role chunk goes out with the first token, after the TTFT
                    yield chunk(role)
                role = None
                yield chunk(_delta(plan, piece, announced))
    except MidstreamFault as exc:  # after the first byte, an error can only travel in the stream
        yield sse({"error": {"message": str(exc), "type": "server_error", "param": None, "code": "server_error"}})
        return
    if role is not None:
        yield chunk(role)
    yield chunk({}, plan.finish_reason)
    if include_usage:
        yield chunk(None, usage=usage(prompt_tokens, gen.tokens_sent))  # choices EMPTY: choices[0] raises
    yield "data: [DONE]\n\n"
