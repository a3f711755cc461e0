"""Where httpx-sse 0.4.3 departs from the WHATWG event-stream spec — pinned, one test per difference.

Lesson 03 uses httpx-sse as the real client beside the learner's parser and
teaches these differences as an exercise in reading a spec against code
(``httpx_sse/_decoders.py`` against
https://html.spec.whatwg.org/multipage/server-sent-events.html). The lab's
checks compare the learner's parser with httpx-sse only on streams where the
two agree. Each test states what httpx-sse does today and what the spec (a
browser's ``EventSource``) does instead; when an upgrade of httpx-sse fixes one,
its test fails here — then update the lesson and the lab checks, and delete
the test.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable

import httpx
import pytest
from fastapi import FastAPI
from fastapi.sse import EventSourceResponse, ServerSentEvent
from httpx_sse import EventSource, SSEError, connect_sse
from starlette.applications import Starlette
from starlette.responses import StreamingResponse
from starlette.routing import Route

from streamcourse.server import serve

Fields = tuple[str, str, str, "int | None"]


def httpx_sse(chunks: Iterable[bytes], content_type: str = "text/event-stream", status: int = 200) -> list[Fields]:
    """Feed these bytes, chunk by chunk, through a real httpx response to httpx-sse."""
    body = list(chunks)

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, headers={"content-type": content_type}, content=iter(body))

    with (
        httpx.Client(transport=httpx.MockTransport(handler)) as client,
        client.stream("GET", "http://sse.test/") as response,
    ):
        return [(e.event, e.data, e.id, e.retry) for e in EventSource(response).iter_sse()]


# --------------------------------------------------------------------------- dispatching


def test_dispatches_an_event_that_has_no_data() -> None:
    # Spec, "dispatch the event" step 2: if the data buffer is empty, reset the buffers and return.
    assert httpx_sse([b"event: ping\n\n"]) == [("ping", "", "", None)]  # spec: no event at all


def test_dispatches_a_block_that_only_sets_the_id_or_the_retry() -> None:
    # Spec: `id` and `retry` alone change the stream's state; no event is fired.
    assert httpx_sse([b"id: 7\n\n"]) == [("message", "", "7", None)]  # spec: none
    assert httpx_sse([b"retry: 5000\n\n"]) == [("message", "", "", 5000)]  # spec: none


def test_a_comment_after_an_id_becomes_an_empty_event() -> None:
    """FastAPI's own keep-alive (`: ping`) after any event with an id reaches httpx-sse users as an empty message.

    httpx-sse dispatches whenever the (sticky) last event id is set; see
    https://github.com/florimondmanca/httpx-sse/issues/35.
    """
    app = FastAPI()

    @app.get("/", response_class=EventSourceResponse)
    async def stream():
        yield ServerSentEvent(raw_data="real", id="1")
        yield ServerSentEvent(comment="ping")
        yield ServerSentEvent(comment="ping")

    with serve(app, name="httpx-sse-diff-ping") as srv, httpx.Client(timeout=5) as client:
        with connect_sse(client, "GET", srv.url + "/") as source:
            got = [(e.event, e.data, e.id, e.retry) for e in source.iter_sse()]
    assert got == [("message", "real", "1", None), ("message", "", "1", None), ("message", "", "1", None)]
    # spec: [("message", "real", "1", None)] — comments never dispatch anything


def test_an_extra_blank_line_after_an_id_becomes_an_empty_event() -> None:
    assert httpx_sse([b"id: 1\ndata: a\n\n\n"]) == [("message", "a", "1", None), ("message", "", "1", None)]
    # spec: only the first event


# --------------------------------------------------------------------------- decoding


def test_keeps_a_leading_bom_and_loses_the_first_field() -> None:
    # Spec: the stream is decoded with "UTF-8 decode", which strips one leading BOM.
    # httpx decodes with a plain UTF-8 decoder, so the first field is named "\ufeffdata" and ignored.
    assert httpx_sse(["\ufeffdata: first\n\ndata: second\n\n".encode()]) == [("message", "second", "", None)]
    assert httpx_sse([b"\xef\xbb", b"\xbfdata: first\n\n"]) == []  # spec: [("message", "first", "", None)]


def test_decodes_with_the_charset_of_the_content_type() -> None:
    # Spec: "Event streams are always decoded as UTF-8. There is no way to specify another character encoding."
    body = ["data: café ☕\n\n".encode()]
    assert httpx_sse(body, "text/event-stream; charset=iso-8859-1") == [("message", "cafÃ© â\x98\x95", "", None)]
    assert httpx_sse(body, "text/event-stream") == [("message", "café ☕", "", None)]


def test_accepts_retry_values_that_are_not_ascii_digits() -> None:
    # Spec: "If the field value consists of only ASCII digits" — otherwise ignore the field. httpx-sse uses int().
    for value, parsed in [("-1", -1), ("+5", 5), (" 5", 5), ("5 ", 5), ("1_000", 1000), ("٣", 3)]:
        assert httpx_sse([f"retry: {value}\ndata: x\n\n".encode()]) == [("message", "x", "", parsed)], value
        # spec: retry None for every one of these


# --------------------------------------------------------------------------- timing


def test_dispatches_a_cr_ended_event_only_when_the_next_chunk_arrives() -> None:
    """A lone CR ends a line at once, but httpx-sse holds a chunk's trailing CR back to see whether LF follows."""
    gap = 0.8

    async def endpoint(request: object) -> StreamingResponse:
        async def chunks():
            yield "data: first\r\r"
            await asyncio.sleep(gap)
            yield "data: second\r\r"

        return StreamingResponse(chunks(), media_type="text/event-stream")

    with (
        serve(Starlette(routes=[Route("/", endpoint)]), name="httpx-sse-diff-cr") as srv,
        httpx.Client(timeout=5) as client,
    ):
        began = time.perf_counter()
        with connect_sse(client, "GET", srv.url + "/") as source:
            arrivals = [(e.data, time.perf_counter() - began) for e in source.iter_sse()]
    assert [data for data, _ in arrivals] == ["first", "second"]
    assert arrivals[0][1] >= gap * 0.9, (
        f"'first' arrived at {arrivals[0][1]:.2f} s — httpx-sse now dispatches it at once"
    )
    # spec (and a browser): 'first' is dispatched as soon as its chunk arrives, about `gap` seconds earlier


# --------------------------------------------------------------------------- the EventSource checks


def test_rejects_the_content_type_in_other_letter_case() -> None:
    # MIME types are case-insensitive: EventSource accepts "Text/Event-Stream".
    with pytest.raises(SSEError):
        httpx_sse([b"data: a\n\n"], "Text/Event-Stream")


def test_accepts_any_content_type_that_contains_text_event_stream() -> None:
    # EventSource compares the MIME type's essence: "text/event-streams" fails the connection.
    assert httpx_sse([b"data: a\n\n"], "text/event-streams") == [("message", "a", "", None)]


def test_does_not_check_the_status_code() -> None:
    # EventSource fails the connection unless the status is 200; with httpx-sse, call response.raise_for_status().
    assert httpx_sse([b"data: oops\n\n"], status=500) == [("message", "oops", "", None)]
