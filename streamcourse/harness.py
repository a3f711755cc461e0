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

from __future__ import annotations

import inspect
from collections.abc import AsyncIterable, Callable, Iterable, Sequence
from typing import Any

from fastapi import FastAPI
from fastapi.responses import PlainTextResponse, Response

__all__ = ["LEARNER_ERROR", "csv_download_app", "ndjson_app", "proxy_app"]

#: Response header that marks a 500 as "the learner's function raised" (its body says what).
LEARNER_ERROR = "x-streamcourse-learner-error"


def _raised(exc: Exception) -> Response:
    return PlainTextResponse(f"{type(exc).__name__}: {exc}", status_code=500, headers={LEARNER_ERROR: "1"})


def csv_download_app(
    csv_export: Callable[..., Any],
    make_rows: Callable[[], Iterable[Sequence[object]]],
    header: Sequence[str],
    filename: str,
) -> FastAPI:
    """``GET /export`` answers ``csv_export(make_rows(), header=..., filename=...)``.

    A plain ``def`` route: a learner's answer that blocks while it builds the
    whole CSV then blocks a worker thread, not the server's event loop.
    ``GET /ping`` answers from the event loop itself, so a check can ask it
    while an export runs: it stays silent while the loop is blocked.
    """
    app = FastAPI()

    @app.get("/ping")
    async def ping() -> str:
        return "pong"

    @app.get("/export")
    def export() -> Any:
        try:
            return csv_export(make_rows(), header=tuple(header), filename=filename)
        except Exception as exc:  # noqa: BLE001 - shown to the learner by the check
            return _raised(exc)

    return app


def ndjson_app(ndjson_rows: Callable[[AsyncIterable[Any]], Any], make_items: Callable[[], AsyncIterable[Any]]) -> FastAPI:
    """``GET /items`` answers ``ndjson_rows(make_items())``."""
    app = FastAPI()

    @app.get("/items")
    async def items() -> Any:
        try:
            return ndjson_rows(make_items())
        except Exception as exc:  # noqa: BLE001
            return _raised(exc)

    return app


def proxy_app(proxy: Callable[[str], Any], url: str) -> FastAPI:
    """``GET /proxy`` answers ``await proxy(url)`` (a plain return value is used as it is)."""
    app = FastAPI()

    @app.get("/proxy")
    async def relayed() -> Any:
        try:
            answer = proxy(url)
            return await answer if inspect.isawaitable(answer) else answer
        except Exception as exc:  # noqa: BLE001
            return _raised(exc)

    return app
