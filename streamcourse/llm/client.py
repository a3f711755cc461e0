"""An openai client for the embedded server, or for the real service when a key is set."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # openai takes most of a second to import: only a caller of client() pays for it
    import openai

__all__ = ["client", "describe"]


def _real(real: bool | None) -> bool:
    return bool(os.environ.get("OPENAI_API_KEY")) if real is None else real


def _base(url: Any) -> str:
    url = str(getattr(url, "url", url)).rstrip("/")  # a Server handle or a URL
    return url if url.endswith("/v1") else f"{url}/v1"


def client(url: Any = None, *, real: bool | None = None, **options: Any) -> openai.AsyncOpenAI:
    """An AsyncOpenAI for the embedded server at ``url`` (a URL or a ``serve()`` handle) —
    or, when ``OPENAI_API_KEY`` is set (or ``real=True``), for the real service at
    ``OPENAI_BASE_URL`` or OpenAI. Checks pass ``real=False`` to always use the embedded one."""
    import openai

    if _real(real):
        return openai.AsyncOpenAI(**options)  # the SDK reads OPENAI_API_KEY and OPENAI_BASE_URL
    if url is None:
        raise ValueError(
            "no OPENAI_API_KEY: start the embedded server first, "
            "srv = serve(llm.make_app(), name='llm'), then llm.client(srv)"
        )
    return openai.AsyncOpenAI(base_url=_base(url), api_key="not-needed", **options)


def describe(url: Any = None, *, real: bool | None = None) -> str:
    """Which service :func:`client` with the same arguments talks to, in words."""
    if _real(real):
        base = os.environ.get("OPENAI_BASE_URL") or "https://api.openai.com/v1"
        return f"{'OpenAI' if 'api.openai.com' in base else 'an OpenAI-compatible service'} at {base}"
    return f"embedded server at {_base(url) if url is not None else '(not started)'}"
