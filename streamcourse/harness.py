"""Small builders that run BESIDE the learner's code: apps that wrap a learner's function.

A check must not build its own route around a learner's function: when grading,
the check runs in a trusted process and the learner's code in a sandbox, and a
route in the check's process would run the learner's code there. A check asks
for one of these builders instead, through ``submission.build(harness.x, ...)``,
which runs it wherever the learner's code runs. Each builder takes only what can
cross the grader's channel (plain data, paths, the check's own iterators and
callables, the learner's own values) and returns an ASGI app for ``serve()``.
Nothing a builder computes is trusted: checks judge only what they observe.

When the learner's function raises, the route answers 500 with the exception's
type and message as its body (``LEARNER_ERROR`` header set), so a check can show
the learner what went wrong without believing anything else the route says.
"""

import inspect
import json
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

# FastAPI is imported by the builders that make an app (lab 01's memory check needs none). So no
# ``from __future__ import annotations`` here: FastAPI would look a route's ``Request`` up in this
# module's globals, where it is not; evaluated as written, it is found in the builder's scope.
if TYPE_CHECKING:
    from fastapi import FastAPI
    from fastapi.responses import Response

__all__ = [
    "LEARNER_ERROR",
    "csv_download_app",
    "ndjson_app",
    "numbered_rows",
    "proxy_app",
    "release_free_memory",
    "relay_behind",
    "wrapped_stream_app",
]

#: Response header that marks a 500 as "the learner's function raised" (its body says what).
LEARNER_ERROR = "x-streamcourse-learner-error"


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


def relay_behind(middleware: Any, model_url: str, **options: Any) -> "FastAPI":
    """A relay to the model at ``model_url``, wrapped in ``middleware(app, **options)`` (lab 12).

    ``GET /chat?prompt=`` streams the model's tokens as ``token`` events, then ``done``.
    ``GET /complete?prompt=`` waits for the whole reply and answers JSON; between the
    model's chunks it asks ``request.is_disconnected()`` and stops the model when the
    client has gone. Behind ``BaseHTTPMiddleware`` that call never turns True while
    no response is running, so the model generates to the end: the difference lab
    12's checks read in the model's record.
    """
    import openai
    from fastapi import FastAPI, Request
    from fastapi.responses import StreamingResponse

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


# --------------------------------------------------------------------------- lab 02: a learner's function behind a route


def _raised(exc: Exception) -> "Response":
    from fastapi.responses import PlainTextResponse

    return PlainTextResponse(f"{type(exc).__name__}: {exc}", status_code=500, headers={LEARNER_ERROR: "1"})


def csv_download_app(
    csv_export: Callable[..., Any],
    rows: Callable[[], Iterable[Sequence[object]]] | int,
    header: Sequence[str],
    filename: str,
) -> "FastAPI":
    """``GET /export`` answers ``csv_export(<rows>, header=..., filename=...)``.

    ``rows`` is the check's own factory of rows, or a count: that many rows
    ``(i, "user i", "x" * 24)`` made here, because thousands of rows pulled one
    by one across the grader's channel would time the channel, not the export.
    A plain ``def`` route: a learner's answer that blocks while it builds the
    whole CSV then blocks a worker thread, not the server's event loop.
    ``GET /ping`` answers from the event loop itself, so a check can ask it
    while an export runs: it stays silent while the loop is blocked.
    """
    from fastapi import FastAPI

    app = FastAPI()

    @app.get("/ping")
    async def ping() -> str:
        return "pong"

    @app.get("/export")
    def export() -> Any:
        made = _table(rows) if isinstance(rows, int) else rows()
        try:
            return csv_export(made, header=tuple(header), filename=filename)
        except Exception as exc:  # noqa: BLE001 - shown to the learner by the check
            return _raised(exc)

    return app


def _table(count: int) -> Iterator[tuple[int, str, str]]:
    for i in range(count):
        yield (i, f"user {i}", "x" * 24)


def ndjson_app(ndjson_rows: Callable[[AsyncIterable[Any]], Any], items: AsyncIterable[Any]) -> "FastAPI":
    """``GET /items`` answers ``ndjson_rows(items)``: one request per app, since ``items`` is read once.

    ``items`` is the check's own async iterable itself, not a factory: the
    grader's channel drives an async iterator on the loop of the check that lent it.
    """
    from fastapi import FastAPI

    app = FastAPI()

    @app.get("/items")
    async def answer() -> Any:
        try:
            return ndjson_rows(items)
        except Exception as exc:  # noqa: BLE001 - shown to the learner by the check
            return _raised(exc)

    return app


def proxy_app(proxy: Callable[[str], Any], url: str) -> "FastAPI":
    """``GET /proxy`` answers ``await proxy(url)`` (a plain return value is used as it is)."""
    from fastapi import FastAPI

    app = FastAPI()

    @app.get("/proxy")
    async def relayed() -> Any:
        try:
            answer = proxy(url)
            return await answer if inspect.isawaitable(answer) else answer
        except Exception as exc:  # noqa: BLE001
            return _raised(exc)

    return app


def wrapped_stream_app(wrap: Callable[..., AsyncIterator[str]], source: AsyncIterator[str], *args: Any) -> "FastAPI":
    """An app whose ``GET /stream`` sends ``wrap(source, *args)`` as an event stream: one request per app.

    ``wrap`` is the learner's stream wrapper (lab 05's ``with_keepalive``); ``source``
    is the check's own async iterator itself, not a factory: the grader's channel
    drives an async iterator on the loop of the check that lent it.
    """
    from fastapi import FastAPI
    from fastapi.responses import StreamingResponse

    app = FastAPI()

    @app.get("/stream")
    async def stream() -> StreamingResponse:
        return StreamingResponse(wrap(source, *args), media_type="text/event-stream")

    return app
