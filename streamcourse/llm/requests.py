"""Read a request of either API into one plan of what the reply will be.

Both APIs ask the same things in different spellings (``messages`` or ``input``,
``tools[i].function.name`` or ``tools[i].name``, ``response_format`` or
``text.format``): :func:`plan` reads either, refuses what it cannot serve with
the real API's error shape, and decides the reply with :mod:`streamcourse.llm.model`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from fastapi.responses import JSONResponse

from streamcourse.llm import model
from streamcourse.llm.record import Generation, Piece, Plan, ToolCall

__all__ = ["Refusal", "Defaults", "Ask", "read_chat", "read_responses", "plan", "FAULTS", "RATE_LIMIT_MESSAGE"]

FAULTS = ("429", "midstream", "stall")
RATE_LIMIT_MESSAGE = "Rate limit reached for requests (simulated by the course server). Please try again in 1s."


class Refusal(Exception):
    """Ends a request with an HTTP error before any byte of a stream is sent (known error 12)."""

    def __init__(
        self, status: int, message: str, type_: str, code: str | None, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        body = {"error": {"message": message, "type": type_, "param": None, "code": code}}  # the real API's shape
        self.response = JSONResponse(body, status_code=status, headers=headers)


def bad_request(message: str, code: str | None = None) -> Refusal:
    return Refusal(400, message, "invalid_request_error", code)


@dataclass(frozen=True)
class Defaults:
    """What ``make_app(...)`` set for every request; a request's own options win."""

    ttft: float
    token_interval: float
    text: str | None
    length: int
    fault: str | None
    interleave: bool = False  # parallel calls' fragments in turn (a request's ``interleave`` wins)


@dataclass
class Ask:
    """What a request asks for, in one spelling for both APIs."""

    messages: list[Any]
    prompt: str
    tools: list[model.Tool]
    choice: str | None  # "auto", "none", "required", a tool's name, or None (not given)
    parallel: bool
    results: list[str]  # tool outputs that end the conversation: the model answers them in text
    schema: Mapping[str, Any] | None  # structured output's JSON schema
    limit_key: str


def _prompt(messages: list[Any]) -> str:
    return next(
        (
            model.content_text(m.get("content"))
            for m in reversed(messages)
            if isinstance(m, dict) and m.get("type", "message") == "message" and m.get("role", "user") == "user"
        ),
        "",
    )


def _tool(entry: Any, spec: Any) -> model.Tool:
    if not isinstance(spec, dict) or not isinstance(spec.get("name"), str) or entry.get("type") != "function":
        raise bad_request("each tool must be {'type': 'function', ...} with a function 'name'.", "invalid_tool")
    return model.Tool(
        spec["name"], spec.get("parameters") or {"type": "object", "properties": {}}, bool(spec.get("strict"))
    )


def _tools(body: dict[str, Any], nested: bool) -> list[model.Tool]:
    entries = body.get("tools") or []
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise bad_request("'tools' must be a list of tool objects.", "invalid_tool")
    return [_tool(e, e.get("function") if nested else e) for e in entries]


def _choice(body: dict[str, Any], tools: list[model.Tool], nested: bool) -> str | None:
    raw = body.get("tool_choice")
    if isinstance(raw, dict):
        raw = (raw.get("function") or {}).get("name") if nested else raw.get("name")
        if raw not in {t.name for t in tools}:
            raise bad_request(
                f"tool_choice names {raw!r}, which is not among the tools offered.", "invalid_tool_choice"
            )
    elif raw not in (None, "auto", "none", "required"):
        raise bad_request("tool_choice must be 'auto', 'none', 'required' or name a function.", "invalid_tool_choice")
    return raw if isinstance(raw, str) or raw is None else None


_ANY_OBJECT = {"type": "object", "properties": {}}


def _schema(fmt: Any, nested: bool) -> Mapping[str, Any] | None:
    """The JSON schema of a structured-output request (``response_format`` nests it, ``text.format`` does not)."""
    if not isinstance(fmt, dict) or fmt.get("type") != "json_schema":
        return None
    spec = fmt.get("json_schema") if nested else fmt
    schema = spec.get("schema") if isinstance(spec, dict) else None
    return schema if isinstance(schema, dict) else _ANY_OBJECT


def _trailing(messages: list[Any], output: Callable[[dict[str, Any]], str | None]) -> list[str]:
    """The tool results that end the conversation, in order (``output`` is None for other messages)."""
    found: list[str] = []
    for message in reversed(messages):
        value = output(message) if isinstance(message, dict) else None
        if value is None:
            break
        found.append(value)
    return found[::-1]


def read_chat(body: dict[str, Any]) -> Ask:
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise bad_request("'messages' must be a non-empty list.")
    trailing = _trailing(messages, lambda m: model.content_text(m.get("content")) if m.get("role") == "tool" else None)
    tools = _tools(body, nested=True)
    return Ask(
        messages,
        _prompt(messages),
        tools,
        _choice(body, tools, True),
        body.get("parallel_tool_calls") is not False,
        trailing,
        _schema(body.get("response_format"), nested=True),
        "max_completion_tokens" if "max_completion_tokens" in body else "max_tokens",
    )


def read_responses(body: dict[str, Any]) -> Ask:
    raw = body.get("input")
    messages = [{"role": "user", "content": raw}] if isinstance(raw, str) else raw
    if not isinstance(messages, list) or not messages:
        raise bad_request("'input' must be a string or a non-empty list.")
    trailing = _trailing(
        messages, lambda m: str(m.get("output", "")) if m.get("type") == "function_call_output" else None
    )
    tools = _tools(body, nested=False)
    return Ask(
        messages,
        _prompt(messages),
        tools,
        _choice(body, tools, False),
        body.get("parallel_tool_calls") is not False,
        trailing,
        _schema((body.get("text") or {}).get("format"), nested=False),
        "max_output_tokens",
    )


def number(body: dict[str, Any], key: str, default: float | None, kind: type = float) -> Any:
    """A numeric request option (None stays None), or a 400 the SDK reports as BadRequestError."""
    value = body.get(key, default)
    try:
        return None if value is None else kind(value)
    except (TypeError, ValueError):
        raise bad_request(f"{key!r} must be a number.", "invalid_value") from None


def fault_of(body: dict[str, Any], model_name: str, default: str | None) -> str | None:
    """The fault a request asks for: ``extra_body={"fault": ...}``, a ``fault-...`` model, or the app's."""
    named = model_name[len("fault-") :] if model_name.startswith("fault-") else None
    return body.get("fault") or named or default


def _calls(gen: Generation, ask: Ask, tools: list[model.Tool]) -> list[ToolCall]:
    suffix = gen.id.split("sc", 1)[-1]
    return [
        ToolCall(
            i,
            f"call_sc{suffix}_{i}",
            f"fc_sc{suffix}_{i}",
            t.name,
            model.json_text(t.parameters, ask.prompt, t.name, str(i)),
        )
        for i, t in enumerate(tools)
    ]


def _pieces(ask: Ask, calls: list[ToolCall], defaults: Defaults, body: dict[str, Any]) -> list[Piece]:
    """The reply cut into paced pieces: tool-call fragments (in turn when ``interleave``), JSON, or words."""
    if calls:
        parts = [[Piece(f, c.index) for f in model.fragments(c.arguments, ask.prompt, c.name)] for c in calls]
        interleave = body.get("interleave", defaults.interleave)  # the wire format lets calls come in turn
        return _in_turn(parts) if interleave else [p for part in parts for p in part]
    if ask.results:
        return [Piece(w) for w in model.split_words("From the tools: " + "; ".join(ask.results) + ".")]
    if ask.schema is not None:
        return [Piece(f) for f in model.fragments(model.json_text(ask.schema, ask.prompt), ask.prompt)]
    words = (
        model.split_words(defaults.text)
        if defaults.text is not None
        else model.reply_words(ask.prompt, number(body, "length", defaults.length, int))
    )
    return [Piece(w) for w in words]


def _in_turn(parts: list[list[Piece]]) -> list[Piece]:
    """One fragment of each call in turn: 0, 1, 0, 1, ... (call 0 first, as its announcement must be)."""
    return [part[i] for i in range(max(map(len, parts))) for part in parts if i < len(part)]


def plan(gen: Generation, ask: Ask, body: dict[str, Any], defaults: Defaults) -> Plan:
    """Refuse the request (a real HTTP error, before any byte) or decide its whole reply."""
    if gen.fault is not None and gen.fault not in FAULTS:
        raise bad_request(f"Unknown fault {gen.fault!r}; use one of {', '.join(FAULTS)}.", "invalid_fault")
    if gen.fault == "429":  # before any byte of the stream: a real HTTP status the SDK can raise
        raise Refusal(
            429,
            RATE_LIMIT_MESSAGE,
            "requests",
            "rate_limit_exceeded",
            {"retry-after": "1", "x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "1s"},
        )
    chosen = [] if ask.results else model.choose_tools(ask.tools, ask.choice, ask.parallel)
    calls = _calls(gen, ask, chosen)
    pieces = _pieces(ask, calls, defaults, body)
    finish, limit = ("tool_calls" if calls else "stop"), number(body, ask.limit_key, None, int)
    if limit is not None and limit < len(pieces):
        pieces, finish = pieces[: max(limit, 0)], "length"
        calls = [c for c in calls if any(p.call == c.index for p in pieces)]
    gen.calls = calls
    return Plan(
        pieces,
        finish,
        number(body, "ttft", defaults.ttft),
        number(body, "token_interval", defaults.token_interval),
        gen.fault,
        number(body, "fault_after", 3, int),
        calls,
    )
