"""The embedded server's "model": what it answers, decided by the request alone.

Every choice is a pure function of the request, so the same request always gets
the same reply, streamed or not, and a lesson can say in advance what will come:

- Text: words drawn from a small pool seeded by the last user message. The pool
  holds non-ASCII words ("café", "→", "💡") so UTF-8 split across chunks happens.
- Tool calls: when tools are offered and ``tool_choice`` is not ``"none"``, the
  model calls them, unless the conversation ends with tool results (then it
  answers in text, quoting them). ``tool_choice`` naming a function calls that one;
  otherwise it calls EVERY offered tool, one call each, in the order offered —
  several tools offered means parallel calls — or only the first when
  ``parallel_tool_calls`` is false.
- Arguments and structured output: a JSON value built from the JSON schema
  (every property, values seeded by the prompt and the tool's name). Strings
  carry a quoted word, so an escape (``\\"``) is inside, and a non-ASCII word.
- Fragments: the JSON text is cut into pieces of 1 to 7 characters at seeded
  places, as a tokenizer would: cuts fall inside strings, between the ``\\`` and
  the ``"`` of an escape (one cut always does), next to multi-byte characters.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "Tool",
    "WORDS",
    "content_text",
    "count_words",
    "split_words",
    "reply_words",
    "choose_tools",
    "value_for",
    "json_text",
    "fragments",
    "rng_for",
]

WORDS = (
    "stream token café byte event → naïve chunk über flow wire buffer reply server client "
    "data line first last piece 日本 slow fast time 💡 queue yield await close send"
).split()


@dataclass(frozen=True)
class Tool:
    """A function tool offered in a request (either API's spelling)."""

    name: str
    parameters: Mapping[str, Any]
    strict: bool = False


def rng_for(*seed: str) -> random.Random:
    """A generator seeded by text: the same request draws the same reply."""
    return random.Random(hashlib.sha256("\x00".join(seed).encode()).digest())  # noqa: S311 - not security


def content_text(content: Any) -> str:
    """Text of a message's content: a string or a list of parts (``text``/``input_text``)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return ""


def count_words(messages: list[Any]) -> int:
    """What the server reports as prompt tokens: words in every message's content."""
    return sum(len(content_text(m.get("content")).split()) for m in messages if isinstance(m, dict))


def split_words(text: str) -> list[str]:
    """Words with their leading whitespace: joined back they give the text (right-stripped)."""
    return re.findall(r"\s*\S+", text)


def reply_words(prompt: str, length: int) -> list[str]:
    """A deterministic reply of ``length`` tokens for ``prompt``."""
    rng = rng_for(prompt)
    words = [rng.choice(WORDS) for _ in range(max(1, length))]
    if all(w.isascii() for w in words):  # every reply exercises UTF-8 handling
        words[len(words) // 2] = "café"
    words[0] = words[0].capitalize()
    words[-1] += "."
    return [words[0]] + [" " + w for w in words[1:]]


def choose_tools(tools: list[Tool], choice: str | None, parallel: bool) -> list[Tool]:
    """Which tools the model calls (see the module's docstring); ``choice`` is a mode or a tool's name."""
    if not tools or choice == "none":
        return []
    if choice not in (None, "auto", "required"):
        return [t for t in tools if t.name == choice][:1]
    return list(tools) if parallel else tools[:1]


def value_for(schema: Mapping[str, Any], rng: random.Random, quote: list[bool]) -> Any:
    """A value that fits ``schema``; ``quote`` is [True] until one string has carried an escape."""
    if "enum" in schema:
        return rng.choice(list(schema["enum"]))
    kind = schema.get("type", "object")
    if isinstance(kind, list):  # e.g. ["string", "null"]: the first non-null type
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object":
        props = schema.get("properties") or {}
        return {name: value_for(sub, rng, quote) for name, sub in props.items()}
    if kind == "array":
        return [value_for(schema.get("items") or {"type": "string"}, rng, quote) for _ in range(2)]
    if kind == "integer":
        return rng.randint(int(schema.get("minimum", 1)), int(schema.get("maximum", 40)))
    if kind == "number":
        return round(rng.uniform(float(schema.get("minimum", 0)), float(schema.get("maximum", 100))), 1)
    if kind == "boolean":
        return rng.random() < 0.5
    if kind == "null":
        return None
    words = [rng.choice(WORDS) for _ in range(rng.randint(1, 3))]
    if quote[0]:
        quote[0] = False
        words.append(f'"{rng.choice(WORDS)}"')
    return " ".join(words)


def json_text(schema: Mapping[str, Any], *seed: str) -> str:
    """The JSON document the model writes for ``schema``: compact, UTF-8 as is (not ``\\u`` escapes)."""
    value = value_for(schema, rng_for(*seed), [True])
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def fragments(text: str, *seed: str) -> list[str]:
    """Cut ``text`` into pieces of 1-7 characters at seeded places, one cut inside the first escape."""
    rng = rng_for("fragments", *seed)
    cuts = {0, len(text)}
    at = 0
    while at < len(text):
        at += rng.randint(1, 7)
        cuts.add(min(at, len(text)))
    escape = text.find("\\")
    if escape >= 0:
        cuts.add(escape + 1)  # between the backslash and what it escapes
    ordered = sorted(cuts)
    return [text[a:b] for a, b in zip(ordered, ordered[1:], strict=False)]
