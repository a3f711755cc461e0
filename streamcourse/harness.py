"""Small builders that run BESIDE the learner's code: apps that wrap a learner's function.

A check must not build its own route around a learner's function: when grading,
the check runs in a trusted process and the learner's code in a sandbox, and a
route in the check's process would run the learner's code there. A check asks
for one of these builders instead, through ``submission.build(harness.x, ...)``,
which runs it wherever the learner's code runs. Each builder takes only what can
cross the grader's channel (plain data, paths, the check's own iterators and
callables, the learner's own values) and returns an ASGI app for ``serve()``.
Nothing a builder computes is trusted: checks judge only what they observe.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import StreamingResponse

__all__ = ["numbered_rows", "release_free_memory", "relay_behind"]


def numbered_rows(count: int, width: int) -> Iterator[str]:
    """``count`` CSV-like rows ``"<i>,xxx…\\n"`` made one at a time where the learner's code runs.

    A memory check feeds these to the learner's code instead of rows of its own:
    rows that came one by one across the grader's channel would take longer than
    the check, and the memory measured must be the learner's code's alone.
    """
    filler = "x" * width
    for i in range(count):
        yield f"{i},{filler}\n"


def release_free_memory() -> None:
    """Give memory the process freed back to the system, so a peak measured from outside counts new memory only.

    Freed memory a process keeps looks resident; new allocations reuse it without
    raising the peak. ``malloc_trim`` (glibc) returns it. Nothing here is trusted:
    code that skips it only makes its own measurement noisier.
    """
    import ctypes
    import gc

    gc.collect()
    try:
        ctypes.CDLL(None).malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: the measurement is rougher, not wrong
        pass


def relay_behind(middleware: Any, model_url: str, **options: Any) -> FastAPI:
    """A relay to the model at ``model_url``, wrapped in ``middleware(app, **options)`` (lab 12).

    ``GET /chat?prompt=`` streams the model's tokens as ``token`` events, then ``done``.
    ``GET /complete?prompt=`` waits for the whole reply and answers JSON; between the
    model's chunks it asks ``request.is_disconnected()`` and stops the model when the
    client has gone. Behind ``BaseHTTPMiddleware`` that call never turns True while
    no response is running, so the model generates to the end: the difference lab
    12's checks read in the model's record.
    """
    import openai

    app = FastAPI()
    client = openai.AsyncOpenAI(base_url=f"{model_url.rstrip('/')}/v1", api_key="not-needed", max_retries=0)

    async def open_stream(prompt: str) -> Any:
        return await client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": prompt}], stream=True
        )

    @app.get("/chat")
    async def chat(prompt: str) -> StreamingResponse:
        stream = await open_stream(prompt)

        async def events() -> AsyncIterator[str]:
            async with stream:
                async for chunk in stream:
                    for choice in chunk.choices:
                        if choice.delta.content:
                            yield f"event: token\ndata: {json.dumps({'text': choice.delta.content})}\n\n"
            yield "event: done\ndata: {}\n\n"

        return StreamingResponse(events(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})

    @app.get("/complete")
    async def complete(request: Request, prompt: str) -> dict[str, Any]:
        parts: list[str] = []
        async with await open_stream(prompt) as stream:
            async for chunk in stream:
                if await request.is_disconnected():
                    return {"stopped": True}  # nobody will read it; leaving the block closes the model's stream
                parts += [choice.delta.content or "" for choice in chunk.choices]
        return {"text": "".join(parts)}

    app.add_middleware(middleware, **options)
    return app
