"""Misbehaving HTTP middlemen, run in the kernel, to show what production does to a stream.

A stream that works on ``127.0.0.1`` can break the day it is deployed, because
something now stands between the server and the client. Lesson 05 brings two such
middlemen into the notebook, each a real HTTP reverse proxy on loopback:

- :func:`buffering_proxy` behaves like nginx's default ``proxy_buffering on``: it
  collects the WHOLE upstream body before the client sees a single byte, so a
  perfectly good stream arrives all at once at the end. The upstream opts out with
  the response header ``X-Accel-Buffering: no`` — the header nginx obeys.
- :func:`idle_cutting_proxy` behaves like a load balancer's idle timeout: when no
  byte has come from upstream for ``idle_timeout`` seconds it drops the connection
  mid-body. The client sees the stream end without its terminating chunk — httpx
  raises ``RemoteProtocolError`` — which is why long-lived streams send pings.

Both close their upstream request when the client leaves or the cut happens, so the
upstream generator's ``finally`` runs, exactly as it would behind the real thing. An
upstream that breaks off mid-body is passed on as HTTP allows: a 502 while nothing has
been sent yet, otherwise the same cut.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import anyio
import httpx

from streamcourse.server import Served, serve

__all__ = ["buffering_proxy", "idle_cutting_proxy"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

_log = logging.getLogger(__name__)

_HOP_BY_HOP = {
    b"connection",
    b"keep-alive",
    b"proxy-authenticate",
    b"proxy-authorization",
    b"te",
    b"trailer",
    b"trailers",
    b"transfer-encoding",
    b"upgrade",
}
#: httpx sets Host and Content-Length for the upstream request itself (as nginx does).
_DROP_FROM_REQUEST = _HOP_BY_HOP | {b"host", b"content-length"}
#: Like nginx's default ``proxy_hide_header``: our own server writes Date and Server.
_DROP_FROM_RESPONSE = _HOP_BY_HOP | {b"date", b"server"}


def buffering_proxy(upstream: str, name: str = "buffering-proxy") -> Served:
    """Serve a proxy to ``upstream`` that holds back the whole body unless ``X-Accel-Buffering: no``."""
    _quiet_uvicorn_about_cuts()
    return serve(_proxy_app(upstream, buffer=True, idle_timeout=None), name=name)


def idle_cutting_proxy(upstream: str, idle_timeout: float, name: str = "idle-proxy") -> Served:
    """Serve a proxy to ``upstream`` that drops a connection after ``idle_timeout`` s without an upstream byte."""
    if idle_timeout <= 0:
        raise ValueError(f"idle_timeout must be a positive number of seconds, not {idle_timeout!r}")
    _quiet_uvicorn_about_cuts()
    return serve(_proxy_app(upstream, buffer=False, idle_timeout=idle_timeout), name=name)


class _Cut(Exception):
    """Raised out of the ASGI app to make uvicorn close the client socket mid-body: the cut."""


class _HideCuts(logging.Filter):
    """A cut is the demonstration, not a bug: keep its traceback out of the notebook."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], _Cut))


def _quiet_uvicorn_about_cuts() -> None:
    """Both proxies cut (an upstream may break mid-body), so both install this once."""
    logger = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, _HideCuts) for f in logger.filters):
        logger.addFilter(_HideCuts())


def _proxy_app(upstream: str, *, buffer: bool, idle_timeout: float | None) -> Callable[..., Awaitable[None]]:
    """A plain ASGI app: HTTP-aware (it must see headers), and no framework in between to buffer."""
    base = upstream.rstrip("/")

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return  # lifespan: nothing to set up
        body = await _read_body(receive)
        if body is None:
            return  # the client left before sending its request body
        cut: str | None = None  # stays None when the client leaves and the relay is cancelled
        async with httpx.AsyncClient(timeout=None) as client:  # noqa: S113 - a stream may run for ever; idle_timeout bounds it
            headers = [(k, v) for k, v in scope["headers"] if k.lower() not in _DROP_FROM_REQUEST]
            request = client.build_request(scope["method"], _target(base, scope), headers=headers, content=body)
            async with anyio.create_task_group() as tasks:
                tasks.start_soon(_cancel_on_disconnect, receive, tasks.cancel_scope)
                cut = await _relay(client, request, send, buffer, idle_timeout)
                tasks.cancel_scope.cancel()
        if cut:
            _log.info("cut %s %s: %s", scope["method"], scope["path"], cut)
            raise _Cut(cut)

    return app


def _target(base: str, scope: Scope) -> str:
    """The upstream URL: the request's own path (without any root_path) and query string."""
    path: bytes = scope.get("raw_path") or scope["path"].encode()
    root = scope.get("root_path", "").encode()
    if root and path.startswith(root):
        path = path[len(root) :]
    query: bytes = scope.get("query_string", b"")
    return base + path.decode("latin-1") + ("?" + query.decode("latin-1") if query else "")


async def _read_body(receive: Receive) -> bytes | None:
    chunks = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


async def _cancel_on_disconnect(receive: Receive, scope: anyio.CancelScope) -> None:
    """When the client goes, cancel the relay: leaving ``client.stream`` closes the upstream."""
    while (await receive())["type"] != "http.disconnect":
        pass
    scope.cancel()


async def _open(
    client: httpx.AsyncClient, request: httpx.Request, send: Send, idle_timeout: float | None
) -> httpx.Response | None:
    """The upstream response, or None once the client has had a 502/504 instead."""
    try:
        with anyio.fail_after(idle_timeout):  # None: wait for ever
            return await client.send(request, stream=True)
    except TimeoutError:
        await _plain(send, 504, "Gateway Timeout: upstream sent no response headers in time\n")
    except httpx.HTTPError as exc:
        await _plain(send, 502, f"Bad Gateway: {exc!r}\n")
    return None


def _start(response: httpx.Response) -> Message:
    headers = [
        (k, v)
        for k, v in response.headers.raw
        if k.lower() not in _DROP_FROM_RESPONSE and not k.lower().startswith(b"x-accel-")
    ]
    return {"type": "http.response.start", "status": response.status_code, "headers": headers}


def _opted_out(response: httpx.Response) -> bool:
    """``X-Accel-Buffering: no``: the header nginx obeys to pass a stream on as it comes."""
    return str(response.headers.get("x-accel-buffering", "")).strip().lower() == "no"


async def _buffer_whole(response: httpx.Response, send: Send) -> None:
    """nginx's default: collect the whole body, then send it in one piece (raw: gzip stays gzip)."""
    try:
        whole = b"".join([chunk async for chunk in response.aiter_raw()])
    except httpx.HTTPError as exc:  # nothing sent yet: the client can still get a real error
        await _plain(send, 502, f"Bad Gateway: upstream broke off: {exc!r}\n")
        return
    await send(_start(response))
    await send({"type": "http.response.body", "body": whole})


async def _relay_until_idle(response: httpx.Response, send: Send, idle_timeout: float | None) -> str | None:
    """Pass each chunk on as it comes; why the client must be cut off mid-body, if it must."""
    await send(_start(response))
    chunks = response.aiter_raw()
    while True:
        try:
            with anyio.move_on_after(idle_timeout) as idle:  # None: never idle
                chunk = await anext(chunks, None)
        except httpx.HTTPError as exc:  # the upstream broke mid-body: so does the relay
            return f"upstream broke off: {exc!r}"
        if idle.cancelled_caught:
            return f"no byte from upstream for {idle_timeout} s"
        if chunk is None:
            break
        await send({"type": "http.response.body", "body": chunk, "more_body": True})
    await send({"type": "http.response.body", "body": b""})
    return None


async def _relay(
    client: httpx.AsyncClient, request: httpx.Request, send: Send, buffer: bool, idle_timeout: float | None
) -> str | None:
    """Pass the upstream response on, buffered whole or chunk by chunk; the reason for a cut, if any."""
    response = await _open(client, request, send, idle_timeout)
    if response is None:
        return None
    try:
        if buffer and not _opted_out(response):
            await _buffer_whole(response, send)
            return None
        return await _relay_until_idle(response, send, idle_timeout)
    finally:
        await response.aclose()


async def _plain(send: Send, status: int, text: str) -> None:
    body = text.encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})
