"""An OpenAI-compatible server that runs inside the notebook, so the course needs no key and no network.

Why it exists: lessons 06-09 stream tokens from a language model, and the checks of
labs 06-09 must PROVE things a real model cannot show on demand: that a client which
gives up really stops the generation upstream, that a 429 arrives before the first
byte, that an error after the first byte travels inside the stream. This server
streams in the wire format of the real API, so the unmodified openai SDK talks to it,
and it keeps a :class:`Generation` record of every request for the checks to read.

Deliberate choices:

- Exact wire format. Chat Completions: ``data: {chunk}`` lines, the role chunk first,
  a finish chunk, then (with ``stream_options.include_usage``) a usage chunk whose
  ``choices`` is EMPTY, then ``data: [DONE]``. Responses API: named events with
  ``sequence_number``, ending in ``response.completed`` (or ``.incomplete``/``.failed``).
- Deterministic text: the reply is drawn from a small word pool seeded by the last
  user message, so the same prompt always gets the same reply, streamed or not. The
  pool holds non-ASCII words ("café", "→", "💡") so UTF-8 split across chunks happens.
- The generator is ASYNC and paced with ``asyncio.sleep``: when the client leaves,
  Starlette cancels the response task and the generator gets ``CancelledError`` at its
  ``await``. The record notes when the server saw the client leave and every token
  produced, so "no tokens after disconnect" is measured, not assumed.
- Faults and pacing are chosen PER REQUEST from the SDK, with
  ``extra_body={"fault": "429" | "midstream" | "stall", "ttft": 0.0, "token_interval": 0.01}``
  or a model named ``fault-429`` etc., so one server serves every lesson and check.
- It does not import the course's pacing module: callers pass ``ttft=pace(0.5)``.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import json
import os
import random
import re
import threading
import time
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import Any, AsyncIterator

import openai
import uvicorn
from fastapi import Body, FastAPI
from fastapi.responses import JSONResponse, StreamingResponse

__all__ = ["Generation", "make_app", "find", "run", "client", "describe", "MODEL", "FAULTS"]

#: Model name lessons pass; the embedded server accepts any name and echoes it back.
MODEL = os.environ.get("STREAMCOURSE_MODEL", "gpt-4o-mini")
FAULTS = ("429", "midstream", "stall")
WORDS = ("stream token café byte event → naïve chunk über flow wire buffer reply server client "
         "data line first last piece 日本 slow fast time 💡 queue yield await close send").split()


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
    tokens: list[str] = field(default_factory=list)
    token_times: list[float] = field(default_factory=list)
    client_gone_at: float | None = None  # when the server noticed the client had left
    finished: bool = False  # every planned token was produced (normal end)
    closed_at: float | None = None  # when the token generator's ``finally`` ran
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
        return (f"<Generation {self.id} {self.api} tokens_sent={self.tokens_sent} finished={self.finished} "
                f"client_gone={gone} tokens_after_disconnect={self.tokens_after_disconnect} closed={closed}>")

    def _client_left(self) -> None:
        if self.client_gone_at is None and self.closed_at is None:
            self.client_gone_at = time.monotonic()

    def _close(self) -> None:
        if self.closed_at is None:
            self.closed_at = time.monotonic()
        self._closed.set()


@dataclass
class _Plan:
    tokens: list[str]
    finish_reason: str  # "stop" or "length"
    ttft: float
    token_interval: float
    fault: str | None
    fault_after: int  # tokens sent before a "midstream" error or a "stall"


class _MidstreamFault(Exception):
    """Raised by the token generator when the request asked for an error mid-stream."""


class _Refusal(Exception):
    """Ends a request with an HTTP error before any byte of a stream is sent (known error 12)."""

    def __init__(self, status: int, message: str, type_: str, code: str | None, headers: dict[str, str] | None = None):
        super().__init__(message)
        body = {"error": {"message": message, "type": type_, "param": None, "code": code}}  # the real API's shape
        self.response = JSONResponse(body, status_code=status, headers=headers)


MIDSTREAM_MESSAGE = "The server had an error while processing your request (simulated mid-stream failure)."
RATE_LIMIT_MESSAGE = "Rate limit reached for requests (simulated by the course server). Please try again in 1s."


def _content_text(content: Any) -> str:
    """Text of a message's content: a string or a list of parts (``text``/``input_text``)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return ""


def _words(messages: list[Any]) -> int:
    return sum(len(_content_text(m.get("content")).split()) for m in messages if isinstance(m, dict))


def _split(text: str) -> list[str]:
    """Words with their leading whitespace: joined back they give the text (right-stripped)."""
    return re.findall(r"\s*\S+", text)


def _reply(prompt: str, length: int) -> list[str]:
    """A deterministic reply of ``length`` tokens for ``prompt``."""
    rng = random.Random(hashlib.sha256(prompt.encode()).digest())
    words = [rng.choice(WORDS) for _ in range(max(1, length))]
    if all(w.isascii() for w in words):  # every reply exercises UTF-8 handling
        words[len(words) // 2] = "café"
    words[0] = words[0].capitalize()
    words[-1] += "."
    return [words[0]] + [" " + w for w in words[1:]]


def _number(body: dict[str, Any], key: str, default: float | None, kind: type = float) -> Any:
    """A numeric request option (None stays None), or a 400 the SDK reports as BadRequestError."""
    value = body.get(key, default)
    try:
        return None if value is None else kind(value)
    except (TypeError, ValueError):
        raise _Refusal(400, f"{key!r} must be a number.", "invalid_request_error", "invalid_value") from None


def _dumps(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


async def _tokens(gen: Generation, plan: _Plan) -> AsyncIterator[str]:
    """Produce the reply's tokens at the planned pace, recording each one and how it ended."""
    try:
        for i, token in enumerate(plan.tokens):
            await asyncio.sleep(plan.ttft if i == 0 else plan.token_interval)
            if plan.fault in ("midstream", "stall") and i == plan.fault_after:
                if plan.fault == "stall":
                    await asyncio.Event().wait()  # silent until the client leaves
                raise _MidstreamFault(MIDSTREAM_MESSAGE)
            gen.token_times.append(time.monotonic())
            gen.tokens.append(token)
            yield token
        gen.finished = True
    except (asyncio.CancelledError, GeneratorExit):
        gen._client_left()  # cancelled at an await, or closed at a yield: nobody is listening
        raise
    finally:
        gen._close()


class _RecordedStream(StreamingResponse):
    """A StreamingResponse that notes when the client left and always closes its generator."""

    def __init__(self, content: AsyncIterator[str], gen: Generation) -> None:
        headers = {"cache-control": "no-cache", "x-request-id": gen.id}
        super().__init__(content, media_type="text/event-stream", headers=headers)
        self.gen = gen

    async def listen_for_disconnect(self, receive: Any) -> None:
        await super().listen_for_disconnect(receive)
        self.gen._client_left()  # seen here first; Starlette then cancels the stream task

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:  # a cancel that hit `send` leaves the generator parked at a yield
            await self.body_iterator.aclose()  # type: ignore[attr-defined]


async def _run_to_end(gen: Generation, plan: _Plan) -> None:
    """Generate the whole reply for a non-streamed request (same pacing, same record)."""
    try:
        async with aclosing(_tokens(gen, plan)) as tokens:
            async for _ in tokens:
                pass
    except _MidstreamFault as exc:  # nothing sent yet: a real HTTP error
        raise _Refusal(500, str(exc), "server_error", "server_error") from None


def make_app(*, ttft: float = 0.05, token_interval: float = 0.02, text: str | None = None,
             length: int = 30, fault: str | None = None) -> FastAPI:
    """The embedded OpenAI-compatible server; ``text`` fixes the reply, ``fault`` applies to every request."""
    app = FastAPI(title="streamcourse embedded LLM", description=__doc__)
    app.state.generations = []
    counter = itertools.count(1)

    @app.exception_handler(_Refusal)
    async def refused(request: Any, exc: _Refusal) -> JSONResponse:
        return exc.response

    def start(api: str, body: dict[str, Any], messages: list[Any], limit_key: str) -> tuple[Generation, _Plan]:
        """Record the request, then plan its reply, or refuse it with an HTTP error."""
        model = str(body.get("model") or MODEL)
        chosen = body.get("fault") or (model[len("fault-"):] if model.startswith("fault-") else None) or fault
        prompt = next((_content_text(m.get("content")) for m in reversed(messages)
                       if isinstance(m, dict) and m.get("role", "user") == "user"), "")
        n = next(counter)
        gen = Generation(f"chatcmpl-sc{n:06d}" if api == "chat.completions" else f"resp_sc{n:06d}",
                         api, model, prompt, bool(body.get("stream")), chosen)
        app.state.generations.append(gen)
        try:
            if chosen is not None and chosen not in FAULTS:
                raise _Refusal(400, f"Unknown fault {chosen!r}; use one of {', '.join(FAULTS)}.",
                               "invalid_request_error", "invalid_fault")
            if chosen == "429":  # before any byte of the stream: a real HTTP status the SDK can raise
                raise _Refusal(429, RATE_LIMIT_MESSAGE, "requests", "rate_limit_exceeded", {
                    "retry-after": "1", "x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "1s"})
            tokens = _split(text) if text is not None else _reply(prompt, _number(body, "length", length, int))
            finish, limit = "stop", _number(body, limit_key, None, int)
            if limit is not None and limit < len(tokens):
                tokens, finish = tokens[: max(limit, 0)], "length"
            plan = _Plan(tokens, finish, _number(body, "ttft", ttft), _number(body, "token_interval", token_interval),
                         chosen, _number(body, "fault_after", 3, int))
        except _Refusal:
            gen._close()
            raise
        return gen, plan

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        names = [MODEL] + [f"fault-{f}" for f in FAULTS]
        return {"object": "list", "data": [{"id": m, "object": "model", "created": 0, "owned_by": "streamcourse"}
                                           for m in names]}

    @app.post("/v1/chat/completions")
    async def chat(body: dict[str, Any] = Body()) -> Any:  # the body is read BEFORE streaming starts
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise _Refusal(400, "'messages' must be a non-empty list.", "invalid_request_error", None)
        gen, plan = start("chat.completions", body, messages,
                          "max_completion_tokens" if "max_completion_tokens" in body else "max_tokens")
        base = {"id": gen.id, "object": "chat.completion.chunk", "created": int(time.time()), "model": gen.model,
                "service_tier": "default", "system_fingerprint": None}
        prompt_count = _words(messages)

        def usage() -> dict[str, Any]:
            return {"prompt_tokens": prompt_count, "completion_tokens": gen.tokens_sent,
                    "total_tokens": prompt_count + gen.tokens_sent,
                    "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
                    "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0,
                                                  "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0}}

        if not gen.stream:
            await _run_to_end(gen, plan)
            message = {"role": "assistant", "content": gen.text, "refusal": None, "annotations": []}
            choice = {"index": 0, "message": message, "logprobs": None, "finish_reason": plan.finish_reason}
            return JSONResponse({**base, "object": "chat.completion", "choices": [choice], "usage": usage()},
                                headers={"x-request-id": gen.id})

        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))

        def chunk(delta: dict[str, Any] | None, finish: str | None = None, **extra: Any) -> str:
            choices = [] if delta is None else [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]
            payload = {**base, "choices": choices, **({"usage": None} if include_usage else {}), **extra}
            return f"data: {_dumps(payload)}\n\n"

        async def events() -> AsyncIterator[str]:
            role = chunk({"role": "assistant", "content": "", "refusal": None})
            try:
                async with aclosing(_tokens(gen, plan)) as tokens:
                    async for token in tokens:
                        if role:  # the role chunk goes out with the first token, after the TTFT
                            yield role
                            role = ""
                        yield chunk({"content": token})
            except _MidstreamFault as exc:  # after the first byte, an error can only travel in the stream
                error = {"message": str(exc), "type": "server_error", "param": None, "code": "server_error"}
                yield f"data: {_dumps({'error': error})}\n\n"  # the SDK raises APIError on this
                return
            if role:
                yield role
            yield chunk({}, plan.finish_reason)
            if include_usage:
                yield chunk(None, usage=usage())  # choices is EMPTY here: chunk.choices[0] raises IndexError
            yield "data: [DONE]\n\n"

        return _RecordedStream(events(), gen)

    @app.post("/v1/responses")
    async def responses(body: dict[str, Any] = Body()) -> Any:
        raw = body.get("input")
        messages = [{"role": "user", "content": raw}] if isinstance(raw, str) else raw
        if not isinstance(messages, list) or not messages:
            raise _Refusal(400, "'input' must be a string or a non-empty list.", "invalid_request_error", None)
        gen, plan = start("responses", body, messages, "max_output_tokens")
        created, msg_id = time.time(), "msg_" + gen.id.removeprefix("resp_")
        prompt_count = _words(messages) + len(str(body.get("instructions") or "").split())
        status = "completed" if plan.finish_reason == "stop" else "incomplete"

        def response(status: str, output: list[Any], **extra: Any) -> dict[str, Any]:
            usage = {"input_tokens": prompt_count,
                     "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
                     "output_tokens": gen.tokens_sent, "output_tokens_details": {"reasoning_tokens": 0},
                     "total_tokens": prompt_count + gen.tokens_sent}
            return {"id": gen.id, "object": "response", "created_at": created, "status": status,
                    "completed_at": time.time() if status == "completed" else None, "error": None,
                    "incomplete_details": None, "instructions": body.get("instructions"),
                    "max_output_tokens": body.get("max_output_tokens"), "model": gen.model, "output": output,
                    "parallel_tool_calls": True, "previous_response_id": None, "temperature": 1.0,
                    "text": {"format": {"type": "text"}}, "tool_choice": "auto", "tools": [], "top_p": 1.0,
                    "truncation": "disabled", "usage": None if status == "in_progress" else usage,
                    "metadata": {}, **extra}

        def final() -> dict[str, Any]:
            part = {"type": "output_text", "annotations": [], "logprobs": [], "text": gen.text}
            item = {"id": msg_id, "type": "message", "status": status, "content": [part], "role": "assistant"}
            extra = {"incomplete_details": {"reason": "max_output_tokens"}} if status == "incomplete" else {}
            return response(status, [item], **extra)

        if not gen.stream:
            await _run_to_end(gen, plan)
            return JSONResponse(final(), headers={"x-request-id": gen.id})

        seq = itertools.count()

        def event(type_: str, **fields: Any) -> str:
            data = {"type": type_, "sequence_number": next(seq), **fields}
            return f"event: {type_}\ndata: {_dumps(data)}\n\n"

        async def events() -> AsyncIterator[str]:
            where = {"item_id": msg_id, "output_index": 0, "content_index": 0}
            yield event("response.created", response=response("in_progress", []))
            yield event("response.in_progress", response=response("in_progress", []))
            item = {"id": msg_id, "type": "message", "status": "in_progress", "content": [], "role": "assistant"}
            yield event("response.output_item.added", output_index=0, item=item)
            yield event("response.content_part.added", **where,
                        part={"type": "output_text", "annotations": [], "logprobs": [], "text": ""})
            try:
                async with aclosing(_tokens(gen, plan)) as tokens:
                    async for token in tokens:
                        yield event("response.output_text.delta", **where, delta=token, logprobs=[])
            except _MidstreamFault as exc:  # the terminal lifecycle event of a failed response
                error = {"code": "server_error", "message": str(exc)}
                yield event("response.failed", response=response("failed", [], error=error))
                return
            done = final()
            item = done["output"][0]
            yield event("response.output_text.done", **where, text=gen.text, logprobs=[])
            yield event("response.content_part.done", **where, part=item["content"][0])
            yield event("response.output_item.done", output_index=0, item=item)
            yield event(f"response.{status}", response=done)

        return _RecordedStream(events(), gen)

    return app


def find(app: FastAPI, id: str) -> Generation:
    """The record of the request whose id (chunk ``id``, response ``id`` or ``x-request-id``) is ``id``."""
    for gen in reversed(app.state.generations):
        if gen.id == id:
            return gen
    raise KeyError(f"no generation {id!r} on this server")


def run(host: str = "127.0.0.1", port: int = 8000, **options: Any) -> None:
    """Serve :func:`make_app` (``options`` go to it) with uvicorn until interrupted."""
    print(f"streamcourse embedded LLM: OpenAI-compatible API at http://{host}:{port}/v1", flush=True)
    uvicorn.run(make_app(**options), host=host, port=port, log_level="info")


def _real(real: bool | None) -> bool:
    return bool(os.environ.get("OPENAI_API_KEY")) if real is None else real


def _base(url: Any) -> str:
    url = str(getattr(url, "url", url)).rstrip("/")  # a Server handle or a URL
    return url if url.endswith("/v1") else f"{url}/v1"


def client(url: Any = None, *, real: bool | None = None, **options: Any) -> openai.AsyncOpenAI:
    """An AsyncOpenAI for the embedded server at ``url`` (a URL or a ``serve()`` handle) —
    or, when ``OPENAI_API_KEY`` is set (or ``real=True``), for the real service at
    ``OPENAI_BASE_URL`` or OpenAI. Checks pass ``real=False`` to always use the embedded one."""
    if _real(real):
        return openai.AsyncOpenAI(**options)  # the SDK reads OPENAI_API_KEY and OPENAI_BASE_URL
    if url is None:
        raise ValueError("no OPENAI_API_KEY: start the embedded server first, "
                         "srv = serve(llm.make_app(), name='llm'), then llm.client(srv)")
    return openai.AsyncOpenAI(base_url=_base(url), api_key="not-needed", **options)


def describe(url: Any = None, *, real: bool | None = None) -> str:
    """Which service :func:`client` with the same arguments talks to, in words."""
    if _real(real):
        base = os.environ.get("OPENAI_BASE_URL") or "https://api.openai.com/v1"
        return f"{'OpenAI' if 'api.openai.com' in base else 'an OpenAI-compatible service'} at {base}"
    return f"embedded server at {_base(url) if url is not None else '(not started)'}"
