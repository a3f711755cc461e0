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

from collections.abc import AsyncIterator, Callable
from typing import Any

from fastapi import FastAPI
from fastapi.responses import StreamingResponse

__all__ = ["wrapped_stream_app"]


def wrapped_stream_app(
    wrap: Callable[..., AsyncIterator[str]], make_source: Callable[[], AsyncIterator[str]], *args: Any
) -> FastAPI:
    """An app whose ``GET /stream`` sends ``wrap(make_source(), *args)`` as an event stream.

    ``wrap`` is the learner's stream wrapper (lab 05's ``with_keepalive``); ``make_source``
    is the check's own callable, so each request gets a fresh source the check watches.
    """
    app = FastAPI()

    @app.get("/stream")
    async def stream() -> StreamingResponse:
        return StreamingResponse(wrap(make_source(), *args), media_type="text/event-stream")

    return app
