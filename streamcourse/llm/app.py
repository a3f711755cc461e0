"""The routes of the embedded server: read the request, record it, answer in the right wire format.

Routing only: what the reply is comes from :mod:`~streamcourse.llm.requests` and
:mod:`~streamcourse.llm.model`, how it is spelled on the wire from
:mod:`~streamcourse.llm.chat` and :mod:`~streamcourse.llm.responses`.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import Annotated, Any

import uvicorn
from fastapi import Body, FastAPI
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.types import Receive, Scope, Send

from streamcourse.llm import chat, model, requests, responses
from streamcourse.llm.record import Generation, MidstreamFault, Plan, produce
from streamcourse.llm.requests import FAULTS, Ask, Defaults, Refusal

__all__ = ["MODEL", "make_app", "find", "run"]

#: Model name lessons pass; the embedded server accepts any name and echoes it back.
MODEL = os.environ.get("STREAMCOURSE_MODEL", "gpt-4o-mini")

JSONBody = Annotated[dict[str, Any], Body()]  # read BEFORE streaming starts


class RecordedStream(StreamingResponse):
    """A StreamingResponse that notes when the client left and always closes its generator."""

    def __init__(self, content: AsyncIterator[str], gen: Generation) -> None:
        headers = {"cache-control": "no-cache", "x-request-id": gen.id}
        super().__init__(content, media_type="text/event-stream", headers=headers)
        self.gen = gen
        self.content = content

    async def listen_for_disconnect(self, receive: Receive) -> None:
        await super().listen_for_disconnect(receive)
        self.gen.mark_client_left()  # seen here first; Starlette then cancels the stream task

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:  # a cancel that hit `send` leaves the generator parked at a yield
            aclose = getattr(self.content, "aclose", None)
            if aclose is not None:
                await aclose()


async def run_to_end(gen: Generation, plan: Plan) -> None:
    """Generate the whole reply for a non-streamed request (same pacing, same record)."""
    try:
        async with aclosing(produce(gen, plan)) as pieces:
            async for _ in pieces:
                pass
    except MidstreamFault as exc:  # nothing sent yet: a real HTTP error
        raise Refusal(500, str(exc), "server_error", "server_error") from None


def make_app(
    *,
    ttft: float = 0.05,
    token_interval: float = 0.02,
    text: str | None = None,
    length: int = 30,
    fault: str | None = None,
    interleave: bool = False,
) -> FastAPI:
    """The embedded OpenAI-compatible server; ``text`` fixes the reply; ``fault`` and ``interleave`` apply to every request."""
    from streamcourse import llm  # the package's docstring is the server's description

    app = FastAPI(title="streamcourse embedded LLM", description=llm.__doc__ or "")
    app.state.generations = []
    defaults = Defaults(ttft, token_interval, text, length, fault, interleave)
    counter = itertools.count(1)

    @app.exception_handler(Refusal)
    async def refused(request: Any, exc: Refusal) -> JSONResponse:
        return exc.response

    def start(api: str, body: dict[str, Any], ask: Ask) -> tuple[Generation, Plan]:
        """Record the request, then plan its reply, or refuse it with an HTTP error."""
        name = str(body.get("model") or MODEL)
        n = next(counter)
        gen = Generation(
            f"chatcmpl-sc{n:06d}" if api == "chat.completions" else f"resp_sc{n:06d}",
            api,
            name,
            ask.prompt,
            bool(body.get("stream")),
            requests.fault_of(body, name, fault),
        )
        app.state.generations.append(gen)
        try:
            return gen, requests.plan(gen, ask, body, defaults)
        except Refusal:
            gen.mark_closed()
            raise

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        names = [MODEL] + [f"fault-{f}" for f in FAULTS]
        return {
            "object": "list",
            "data": [{"id": m, "object": "model", "created": 0, "owned_by": "streamcourse"} for m in names],
        }

    @app.post("/v1/chat/completions")
    async def chat_completions(body: JSONBody) -> Any:
        ask = requests.read_chat(body)
        gen, plan = start("chat.completions", body, ask)
        head, prompt_tokens = chat.base(gen), model.count_words(ask.messages)
        if not gen.stream:
            await run_to_end(gen, plan)
            return JSONResponse(chat.completion(gen, plan, head, prompt_tokens), headers={"x-request-id": gen.id})
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        return RecordedStream(chat.chunks(gen, plan, head, prompt_tokens, include_usage), gen)

    @app.post("/v1/responses")
    async def create_response(body: JSONBody) -> Any:
        ask = requests.read_responses(body)
        gen, plan = start("responses", body, ask)
        prompt_tokens = model.count_words(ask.messages) + len(str(body.get("instructions") or "").split())
        reply = responses.Reply(gen, plan, body, prompt_tokens)
        if not gen.stream:
            await run_to_end(gen, plan)
            return JSONResponse(responses.final(reply), headers={"x-request-id": gen.id})
        return RecordedStream(responses.events(reply), gen)

    return app


def find(app: FastAPI, id: str) -> Generation:
    """The record of the request whose id (chunk ``id``, response ``id`` or ``x-request-id``) is ``id``."""
    for gen in reversed(app.state.generations):
        if gen.id == id:
            return gen  # type: ignore[no-any-return]  # app.state is untyped
    raise KeyError(f"no generation {id!r} on this server")


def run(host: str = "127.0.0.1", port: int = 8000, **options: Any) -> None:
    """Serve :func:`make_app` (``options`` go to it) with uvicorn until interrupted."""
    print(f"streamcourse embedded LLM: OpenAI-compatible API at http://{host}:{port}/v1", flush=True)
    uvicorn.run(make_app(**options), host=host, port=port, log_level="info")
