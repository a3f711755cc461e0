"""Checks for lab 03 — the SSE wire format: ``format_event``, ``parse_stream`` and ``countdown``.

The yardstick is the WHATWG event-stream algorithm
(https://html.spec.whatwg.org/multipage/server-sent-events.html#event-stream-interpretation),
written out below as :func:`reference_parse` — short, whole-text and obviously
right, so it never depends on the learner's code. httpx-sse is the real client
beside it; where httpx-sse departs from the spec (see
``tests/test_httpx_sse_differences.py``) the checks only feed it streams on
which it follows the spec. Known wrong answers live in ``wrong/lab03.*``.
"""

from __future__ import annotations

import asyncio
import itertools
import re
import time
from collections.abc import Iterable, Iterator
from typing import Any

import httpx
import pytest
from httpx_sse import EventSource, connect_sse
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.applications import Starlette
from starlette.responses import StreamingResponse
from starlette.routing import Route

from streamcourse.checking import within
from streamcourse.server import serve

FORMAT = "lab03.format_event"
PARSE = "lab03.parse_stream"
COUNTDOWN = "lab03.countdown"

Fields = tuple[str, str, str, "int | None"]

# Deterministic and quick: the same examples for every learner, no database files written.
PROPERTY = settings(
    max_examples=60, deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck)
)


# --------------------------------------------------------------------------- the yardstick

_LINE_BREAK = re.compile(r"\r\n|\r|\n")


def reference_parse(text: str) -> list[Fields]:
    """The WHATWG algorithm on a whole stream: (event, data, id, retry) of each dispatched event."""
    text = text.removeprefix("\ufeff")
    lines = _LINE_BREAK.split(text)[:-1]  # the last piece has no line break: never a complete line
    events: list[Fields] = []
    data: list[str] = []
    kind, last_id, retry = "", "", None
    for line in lines:
        if line == "":
            if data:
                events.append((kind or "message", "\n".join(data), last_id, retry))
            data, kind, retry = [], "", None
        elif not line.startswith(":"):
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if name == "data":
                data.append(value)
            elif name == "event":
                kind = value
            elif name == "id" and "\0" not in value:
                last_id = value
            elif name == "retry" and re.fullmatch(r"[0-9]+", value):
                retry = int(value)
    return events


def reference_format(data: str, event: str | None = None, id: str | None = None, retry: int | None = None) -> str:
    lines = [f"event: {event}"] * (event is not None) + [f"id: {id}"] * (id is not None)
    lines += [f"retry: {retry}"] * (retry is not None) + [f"data: {line}" for line in _LINE_BREAK.split(data)]
    return "\n".join(lines) + "\n\n"


def fields(event: Any) -> Fields:
    """The four fields of a learner's event; the checks compare fields, not types."""
    try:
        return (event.event, event.data, event.id or "", event.retry)
    except AttributeError:
        pytest.fail(
            f"each event must have .event, .data, .id and .retry (use the Event class); got {event!r}", pytrace=False
        )


def parse(submission: Any, chunks: Iterable[str], seconds: float = 5) -> list[Fields]:
    events = within(seconds, lambda: list(submission.parse_stream(iter(list(chunks)))), what="parse_stream")
    return [fields(e) for e in events]


def httpx_sse_parse(chunks: Iterable[bytes], content_type: str = "text/event-stream") -> list[Fields]:
    """What httpx-sse makes of these bytes (through a real httpx response, chunk by chunk)."""
    body = list(chunks)

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"content-type": content_type}, content=iter(body))

    with (
        httpx.Client(transport=httpx.MockTransport(handler)) as client,
        client.stream("GET", "http://sse.test/") as response,
    ):
        return [(e.event, e.data, e.id, e.retry) for e in EventSource(response).iter_sse()]


def show(value: Any) -> str:
    text = repr(value)
    return text if len(text) < 300 else text[:300] + "…"


# --------------------------------------------------------------------------- format_event


def fmt(submission: Any, *args: Any, **kwargs: Any) -> str:
    text = within(5, lambda: submission.format_event(*args, **kwargs), what="format_event")
    assert isinstance(text, str), f"format_event must return a str, got {type(text).__name__}"
    return text


@pytest.mark.exercise(FORMAT)
def test_an_event_is_its_fields_and_a_blank_line(submission) -> None:
    text = fmt(submission, "hello")
    assert text.endswith("\n\n"), f"an event ends with a blank line (\\n\\n) so the client dispatches it; got {text!r}"
    assert reference_parse(text) == [("message", "hello", "", None)], (
        f"format_event('hello') should be one event with data 'hello'; got {text!r}"
    )


@pytest.mark.exercise(FORMAT)
def test_multi_line_data_gets_one_data_field_per_line(submission) -> None:
    for data in ["line 1\nline 2\nline 3", "line 1\r\nline 2", "line 1\rline 2"]:
        text = fmt(submission, data)
        got = reference_parse(text)
        expected = _LINE_BREAK.sub("\n", data)
        assert got == [("message", expected, "", None)], (
            f"data {data!r} must arrive as {expected!r}: every line needs its own 'data:' field "
            f"(f'data: {{data}}\\n\\n' breaks here); you wrote {text!r}"
        )


@pytest.mark.exercise(FORMAT)
@pytest.mark.behaviour("every answer writes each field it is given")
def test_event_id_and_retry_are_written(submission) -> None:
    text = fmt(submission, "payload", event="update", id="42", retry=5000)
    assert reference_parse(text) == [("update", "payload", "42", 5000)], (
        f"expected one 'update' event with id 42 and retry 5000; you wrote {text!r}"
    )


@pytest.mark.exercise(FORMAT)
def test_falsy_values_are_still_sent(submission) -> None:
    text = fmt(submission, "x", id="0", retry=0)
    assert reference_parse(text) == [("message", "x", "0", 0)], (
        f"id '0' and retry 0 are real values: test with `is not None`, not truthiness; you wrote {text!r}"
    )


@pytest.mark.exercise(FORMAT)
def test_leading_spaces_in_values_survive(submission) -> None:
    text = fmt(submission, "  indented", event=" spaced")
    assert reference_parse(text) == [(" spaced", "  indented", "", None)], (
        "a parser removes exactly one space after the colon: write 'data: ' + value so a value's own "
        f"leading spaces survive; you wrote {text!r}"
    )


@pytest.mark.exercise(FORMAT)
def test_empty_data_and_a_trailing_newline_survive(submission) -> None:
    for data, expected in [("", ""), ("last line\n", "last line\n"), ("\n", "\n")]:
        text = fmt(submission, data)
        assert reference_parse(text) == [("message", expected, "", None)], (
            f"data {data!r} must arrive unchanged (str.splitlines() drops the empty last line); you wrote {text!r}"
        )


@pytest.mark.exercise(FORMAT)
def test_data_is_split_only_at_cr_and_lf(submission) -> None:
    data = "a\u2028b\x85c\x0bd\x0ce\x1cf"
    text = fmt(submission, data)
    assert reference_parse(text) == [("message", data, "", None)], (
        "SSE lines end only at \\r\\n, \\r or \\n; other Unicode line separators are data "
        f"(str.splitlines() splits at them too); you wrote {text!r}"
    )


@pytest.mark.exercise(FORMAT)
def test_a_comment_is_ignored_by_clients(submission) -> None:
    for comment in ["keep-alive", "two\ndata: injected"]:
        text = fmt(submission, comment=comment)
        assert text.startswith(":"), f"a comment line starts with ':'; format_event(comment={comment!r}) wrote {text!r}"
        assert reference_parse(text) == [], (
            f"a comment must not dispatch any event, even when it has line breaks; you wrote {text!r}"
        )


@pytest.mark.exercise(FORMAT)
def test_a_line_break_in_event_or_id_raises_value_error(submission) -> None:
    for field, value in itertools.product(["event", "id"], ["a\nb", "a\rb", "a\r\nb"]):
        with pytest.raises(ValueError):
            within(5, lambda f=field, v=value: submission.format_event("x", **{f: v}), what="format_event")
            pytest.fail(
                f"format_event('x', {field}={value!r}) should raise ValueError: a line break there would start "
                "a new field (or end the event) on the wire",
                pytrace=False,
            )


@pytest.mark.exercise(FORMAT)
def test_a_nul_in_id_raises_value_error(submission) -> None:
    with pytest.raises(ValueError):
        within(5, lambda: submission.format_event("x", id="a\0b"), what="format_event")
        pytest.fail(
            "format_event('x', id='a\\0b') should raise ValueError: clients ignore an id containing NUL", pytrace=False
        )


@pytest.mark.exercise(FORMAT)
def test_a_negative_retry_raises_value_error(submission) -> None:
    with pytest.raises(ValueError):
        within(5, lambda: submission.format_event("x", retry=-1), what="format_event")
        pytest.fail(
            "format_event('x', retry=-1) should raise ValueError: retry is only ASCII digits on the wire", pytrace=False
        )


@pytest.mark.exercise(FORMAT)
def test_any_text_survives_the_round_trip(submission) -> None:
    single_line = st.text(st.characters(blacklist_characters="\r\n\0", blacklist_categories=("Cs",)), max_size=12)

    @PROPERTY
    @given(
        data=st.text(max_size=40),
        event=st.none() | single_line,
        id=st.none() | single_line,
        retry=st.none() | st.integers(0, 10**9),
        second=st.text(max_size=10),
    )
    def round_trip(data: str, event: str | None, id: str | None, retry: int | None, second: str) -> None:
        text = submission.format_event(data, event=event, id=id, retry=retry)
        after = submission.format_event(second)
        expected = [
            (event or "message", _LINE_BREAK.sub("\n", data), id or "", retry),
            ("message", _LINE_BREAK.sub("\n", second), id or "", None),
        ]
        got = reference_parse(text + after)
        assert got == expected, (
            f"format_event({data!r}, event={event!r}, id={id!r}, retry={retry!r}) followed by "
            f"format_event({second!r}) should parse to {expected!r}, got {got!r}; you wrote {text + after!r}"
        )

    within(5, round_trip.hypothesis.inner_test, "two\nlines", "e", "1", 10, "", what="format_event")  # fail fast
    within(30, round_trip, what="the round trip")


@pytest.mark.exercise(FORMAT)
def test_httpx_sse_reads_what_format_event_writes(submission) -> None:
    events = [
        {"comment": "hello, client"},
        {"data": "first"},
        {"data": "two\nlines", "event": "note", "id": "1"},
        {"data": "ünïcödé ☕ 😀", "retry": 2500},
        {"data": '{"json": true}', "event": "done"},
    ]
    body = "".join(fmt(submission, **kwargs) for kwargs in events)

    async def stream(request: Any) -> StreamingResponse:
        async def chunks() -> Any:
            for piece in re.findall(r".{1,7}", body, re.DOTALL):
                yield piece
                await asyncio.sleep(0)

        return StreamingResponse(chunks(), media_type="text/event-stream")

    with serve(Starlette(routes=[Route("/", stream)]), name="lab03-check-format") as srv:
        with httpx.Client(timeout=5) as client, connect_sse(client, "GET", srv.url + "/") as source:
            got = [(e.event, e.data, e.id, e.retry) for e in source.iter_sse()]
    expected = [
        ("message", "first", "", None),
        ("note", "two\nlines", "1", None),
        ("message", "ünïcödé ☕ 😀", "1", 2500),
        ("done", '{"json": true}', "1", None),
    ]
    assert got == expected, f"httpx-sse should read {expected!r} from your events; it read {got!r} from {body!r}"


# --------------------------------------------------------------------------- parse_stream


@pytest.mark.exercise(PARSE)
@pytest.mark.behaviour("every parser must give the events of the plainest stream")
def test_a_simple_stream_gives_its_events(submission) -> None:
    got = parse(submission, ["data: hello\n\n", "event: greet\ndata: world\nid: 1\n\n"])
    assert got == [("message", "hello", "", None), ("greet", "world", "1", None)], (
        f"expected two events; got {show(got)}"
    )


@pytest.mark.exercise(PARSE)
def test_multi_line_data_is_joined_with_newlines(submission) -> None:
    got = parse(submission, ["data: one\ndata: two\ndata:\ndata: three\n\n"])
    assert got == [("message", "one\ntwo\n\nthree", "", None)], f"data lines are joined with '\\n'; got {show(got)}"


@pytest.mark.exercise(PARSE)
@pytest.mark.parametrize("eol", ["\n", "\r\n", "\r"], ids=["LF", "CRLF", "CR"])
def test_every_kind_of_line_break_ends_a_line(submission, eol: str) -> None:
    stream = f"event: a{eol}data: 1{eol}data: 2{eol}{eol}data: 3{eol}{eol}"
    got = parse(submission, [stream])
    assert got == [("a", "1\n2", "", None), ("message", "3", "", None)], (
        f"lines may end with {eol!r}: expected two events from {stream!r}, got {show(got)}"
    )


@pytest.mark.exercise(PARSE)
def test_a_crlf_split_across_chunks_is_one_line_break(submission) -> None:
    got = parse(submission, ["data: a\r", "\ndata: b\r", "\n\r", "\n"])
    assert got == [("message", "a\nb", "", None)], (
        "a '\\r' at the end of one chunk and '\\n' at the start of the next are ONE line break, "
        f"not an empty line: expected one event 'a\\nb', got {show(got)}"
    )


TRICKY = (
    "\ufeffretry: 100\r\n: comment\rdata:  two spaces\r\ndata\nid: 7\r\r\n"
    "event: é☕\ndata: 😀\r\n\r\nid\rdata: x\n\n: ping\n\ndata: tail"
)


@pytest.mark.exercise(PARSE)
def test_every_split_of_the_stream_gives_the_same_events(submission) -> None:
    expected = reference_parse(TRICKY)
    for cut in range(len(TRICKY) + 1):
        chunks = [TRICKY[:cut], TRICKY[cut:]]
        got = parse(submission, chunks)
        assert got == expected, f"split into {chunks!r}, the stream should give {show(expected)}, got {show(got)}"


SHORT = "\ufeffdata: a\r\ndata:b\r\rid: 1\n\n"


@pytest.mark.exercise(PARSE)
def test_every_pair_of_splits_gives_the_same_events(submission) -> None:
    expected = reference_parse(SHORT)
    for i, j in itertools.combinations(range(len(SHORT) + 1), 2):
        chunks = [SHORT[:i], SHORT[i:j], SHORT[j:]]
        got = parse(submission, chunks)
        assert got == expected, f"split into {chunks!r}, the stream should give {show(expected)}, got {show(got)}"


@pytest.mark.exercise(PARSE)
def test_one_chunk_per_character_gives_the_same_events(submission) -> None:
    expected = reference_parse(TRICKY)
    got = parse(submission, list(TRICKY))
    assert got == expected, f"fed one character at a time, the stream should give {show(expected)}, got {show(got)}"


@pytest.mark.exercise(PARSE)
def test_a_leading_bom_is_dropped_once(submission) -> None:
    got = parse(submission, ["\ufeffdata: a\n\n"])
    assert got == [("message", "a", "", None)], (
        f"one BOM (\\ufeff) at the start of the stream is not part of the first field; got {show(got)}"
    )
    got = parse(submission, ["\ufeff\ufeffdata: a\n\ndata: b\n\n"])
    assert got == [("message", "b", "", None)], (
        f"only ONE leading BOM is dropped: a second one belongs to the field name; got {show(got)}"
    )


@pytest.mark.exercise(PARSE)
def test_a_bom_after_the_start_is_ordinary_text(submission) -> None:
    got = parse(submission, ["", "data: a\n\n", "\ufeffdata: b\n\ndata: \ufeffc\n\n"])
    assert got == [("message", "a", "", None), ("message", "\ufeffc", "", None)], (
        f"a BOM is only special at the very start of the stream (not at the start of each chunk or line); got {show(got)}"
    )


@pytest.mark.exercise(PARSE)
def test_a_field_without_colon_has_an_empty_value(submission) -> None:
    got = parse(submission, ["data\n\ndata\ndata\n\n"])
    assert got == [("message", "", "", None), ("message", "\n", "", None)], (
        f"a line 'data' (no colon) is a data field with an empty value; got {show(got)}"
    )


@pytest.mark.exercise(PARSE)
def test_only_one_space_after_the_colon_is_removed(submission) -> None:
    got = parse(submission, ["data:  two\ndata:\tthree\ndata:none\n\n"])
    assert got == [("message", " two\n\tthree\nnone", "", None)], (
        f"remove exactly one U+0020 space after the colon, nothing else; got {show(got)}"
    )


@pytest.mark.exercise(PARSE)
def test_comments_and_unknown_fields_are_ignored(submission) -> None:
    got = parse(submission, [": hello\ndata: a\n:data: b\nDATA: c\nfoo: bar\n data: d\n\n"])
    assert got == [("message", "a", "", None)], (
        f"comments (':' first) and unknown fields (names are case-sensitive) are ignored; got {show(got)}"
    )


@pytest.mark.exercise(PARSE)
def test_an_event_without_data_is_not_dispatched(submission) -> None:
    got = parse(submission, ["event: ping\n\nid: 3\n\nretry: 10\n\n: keep-alive\n\n\n\ndata: real\n\n"])
    assert got == [("message", "real", "3", None)], (
        "a blank line dispatches an event only when data was received; the event type and retry "
        f"reset at every blank line; got {show(got)}"
    )


@pytest.mark.exercise(PARSE)
def test_the_event_type_resets_after_each_event(submission) -> None:
    got = parse(submission, ["event: a\ndata: 1\n\ndata: 2\n\nevent:\ndata: 3\n\n"])
    assert [e[0] for e in got] == ["a", "message", "message"], (
        f"the type applies to one event only, and an empty 'event:' means 'message'; got {show(got)}"
    )


@pytest.mark.exercise(PARSE)
def test_the_last_event_id_carries_over(submission) -> None:
    got = parse(submission, ["id: 1\ndata: a\n\ndata: b\n\nid\ndata: c\n\n"])
    assert [e[2] for e in got] == ["1", "1", ""], (
        f"the last event id stays in force for the following events until another 'id' (an empty one resets it); got {show(got)}"
    )


@pytest.mark.exercise(PARSE)
def test_an_id_containing_nul_is_ignored(submission) -> None:
    got = parse(submission, ["id: 1\ndata: a\n\nid: 2\0x\ndata: b\n\n"])
    assert [e[2] for e in got] == ["1", "1"], (
        f"an id field containing NUL is ignored (the previous id stays); got {show(got)}"
    )


@pytest.mark.exercise(PARSE)
def test_retry_counts_only_when_it_is_ascii_digits(submission) -> None:
    values = {
        "1000": 1000,
        "0": 0,
        "-5": None,
        "+5": None,
        " 5": None,
        "5 ": None,
        "1_000": None,
        "٣": None,
        "5s": None,
        "": None,
    }
    stream = "".join(f"retry: {v}\ndata: x\n\n" for v in values)
    got = [e[3] for e in parse(submission, [stream])]
    assert got == list(values.values()), (
        f"retry values {list(values)} should give {list(values.values())} (only ASCII digits count; "
        f"int() accepts far more); got {got}"
    )


@pytest.mark.exercise(PARSE)
def test_an_unfinished_event_at_the_end_is_dropped(submission) -> None:
    for tail in ["data: b", "data: b\n", "data: b\r\n"]:
        got = parse(submission, ["data: a\n\n", tail])
        assert got == [("message", "a", "", None)], (
            f"an event not ended by a blank line when the stream ends is never dispatched ({tail!r} at the end); got {show(got)}"
        )


class EndlessChunks:
    """Chunks of a live stream; asking for more than ``allowed`` means the parser waited for the future."""

    def __init__(self, chunks: Iterable[str], allowed: int) -> None:
        self.chunks, self.allowed, self.taken = iter(chunks), allowed, 0

    def __iter__(self) -> Iterator[str]:
        return self

    def __next__(self) -> str:
        if self.taken >= self.allowed:
            raise TimeoutError("parse_stream asked for a chunk that has not arrived yet")
        self.taken += 1
        return next(self.chunks)


def first_events(submission: Any, source: EndlessChunks, n: int) -> list[Fields]:
    try:
        events = within(5, lambda: list(itertools.islice(submission.parse_stream(source), n)), what="parse_stream")
    except TimeoutError:
        pytest.fail(
            f"parse_stream asked for chunk {source.taken + 1} before yielding event {n}: yield each event as soon "
            "as its blank line has arrived — on a live stream the next chunk may come minutes later",
            pytrace=False,
        )
    return [fields(e) for e in events]


@pytest.mark.exercise(PARSE)
def test_events_are_yielded_as_soon_as_they_arrive(submission) -> None:
    source = EndlessChunks((f"data: {i}\n\n" for i in itertools.count()), allowed=3)
    got = first_events(submission, source, 3)
    assert [e[1] for e in got] == ["0", "1", "2"], (
        f"expected the first three events of an endless stream; got {show(got)}"
    )


@pytest.mark.exercise(PARSE)
def test_a_cr_ended_event_does_not_wait_for_the_next_chunk(submission) -> None:
    source = EndlessChunks(["data: a\r\r", "\ndata: b\r\n\r\n"], allowed=1)
    got = first_events(submission, source, 1)
    assert got == [("message", "a", "", None)], f"a lone '\\r' ends a line at once; got {show(got)}"


def spec_stream() -> st.SearchStrategy[str]:
    """Streams of complete events that all have data: the part of the spec httpx-sse follows."""
    text = st.text(st.characters(blacklist_characters="\r\n", blacklist_categories=("Cs",)), max_size=8)
    line = st.one_of(
        st.builds(lambda v: f"data:{v}", text),
        st.builds(lambda v: f"event:{v}", text),
        st.builds(lambda v: f"id:{v}", text),
        st.builds(lambda v: f"retry: {v}", st.integers(0, 99999)),
        st.builds(lambda v: f":{v}", text),
        st.builds(lambda v: f"x-unknown:{v}", text),
        st.just("data"),
    )
    block = st.builds(
        lambda d, rest: [d, *rest], st.builds(lambda v: f"data: {v}", text), st.lists(line, max_size=4)
    ).flatmap(st.permutations)
    eol = st.sampled_from(["\n", "\r", "\r\n"])
    return st.lists(st.tuples(block, eol), min_size=1, max_size=4).map(
        lambda blocks: "".join(e.join(lines) + e + e for lines, e in blocks)
    )


@pytest.mark.exercise(PARSE)
def test_agrees_with_httpx_sse_where_httpx_sse_follows_the_spec(submission) -> None:
    @PROPERTY
    @given(stream=spec_stream(), cuts=st.lists(st.integers(0, 400), max_size=4))
    def agree(stream: str, cuts: list[int]) -> None:
        points = sorted({min(c, len(stream)) for c in cuts})
        chunks = [stream[a:b] for a, b in zip([0, *points], [*points, len(stream)], strict=True)]
        theirs = httpx_sse_parse([c.encode() for c in chunks])
        ours = [fields(e) for e in submission.parse_stream(iter(chunks))]
        assert ours == theirs, (
            f"on {chunks!r} httpx-sse (and the spec) give {show(theirs)}; parse_stream gave {show(ours)}"
        )

    within(5, agree.hypothesis.inner_test, "data: a\r\n\r\n", [3], what="parse_stream")  # fail fast
    within(30, agree, what="parse_stream")


@pytest.mark.exercise(PARSE)
def test_agrees_with_the_spec_on_any_stream(submission) -> None:
    piece = st.sampled_from(
        ["data", "event", "id", "retry", ":", " ", "1", "x", "é", "\0", "\ufeff", "\r", "\n", "\r\n", "\n\n"]
    )

    @PROPERTY
    @given(pieces=st.lists(piece, max_size=40), cut=st.integers(0, 200))
    def agree(pieces: list[str], cut: int) -> None:
        stream = "".join(pieces)
        chunks = [stream[:cut], stream[cut:]]
        expected = reference_parse(stream)
        ours = [fields(e) for e in submission.parse_stream(iter(chunks))]
        assert ours == expected, f"on {chunks!r} the spec gives {show(expected)}; parse_stream gave {show(ours)}"

    within(5, agree.hypothesis.inner_test, ["data", ":", " ", "x", "\r\n", "\n"], 3, what="parse_stream")  # fail fast
    within(30, agree, what="parse_stream")


# --------------------------------------------------------------------------- countdown


@pytest.fixture
def countdown_url(submission) -> Iterator[str]:
    app = submission.countdown_app
    with serve(app, name="lab03-check-countdown") as srv:
        yield srv.url + "/countdown"


EXPECTED_TICKS = [("tick", "3", "3"), ("tick", "2", "2"), ("tick", "1", "1")]


@pytest.mark.exercise(COUNTDOWN)
def test_countdown_streams_ticks_then_done(countdown_url: str) -> None:
    with httpx.Client(timeout=10) as client:
        response = client.get(countdown_url, params={"start": 3, "interval": 0.05})
    assert response.status_code == 200, (
        f"GET /countdown?start=3 should answer 200, got {response.status_code}: {response.text[:200]}"
    )
    events = reference_parse(response.content.decode("utf-8"))
    ticks = [(e, d, i) for e, d, i, _ in events[:-1]]
    assert ticks == EXPECTED_TICKS, (
        f"expected tick events 3, 2, 1 with ids 3, 2, 1 (event, data, id); got {show(events)}"
    )
    assert events and events[-1][:2] == ("done", "liftoff"), (
        f"the last event should be 'done' with data liftoff (not \"liftoff\": use raw_data, FastAPI JSON-encodes data); got {show(events[-1:])}"
    )


@pytest.mark.exercise(COUNTDOWN)
def test_httpx_sse_reads_the_countdown(countdown_url: str) -> None:
    with (
        httpx.Client(timeout=10) as client,
        connect_sse(client, "GET", countdown_url, params={"start": 2, "interval": 0.05}) as source,
    ):
        status = source.response.status_code
        assert status == 200, f"GET /countdown?start=2 should answer 200, got {status}"
        # httpx-sse also reports blocks without data (the spec does not): leave those out
        got = [(e.event, e.data, e.id) for e in source.iter_sse() if e.data != ""]
    assert got == [("tick", "2", "2"), ("tick", "1", "1"), ("done", "liftoff", "1")], (
        f"httpx-sse should read tick 2, tick 1, done (the done event keeps the last id, 1); got {show(got)}"
    )


@pytest.mark.exercise(COUNTDOWN)
def test_the_content_type_is_text_event_stream(countdown_url: str) -> None:
    with httpx.Client(timeout=10) as client:
        response = client.get(countdown_url, params={"start": 1, "interval": 0})
    media_type = response.headers.get("content-type", "").partition(";")[0].strip().lower()
    assert media_type == "text/event-stream", f"an event stream must be sent as text/event-stream, got {media_type!r}"


@pytest.mark.exercise(COUNTDOWN)
def test_caches_and_proxies_are_told_not_to_hold_events(countdown_url: str) -> None:
    with httpx.Client(timeout=10) as client:
        response = client.get(countdown_url, params={"start": 1, "interval": 0})
    cache = response.headers.get("cache-control", "").lower()
    assert "no-cache" in cache or "no-store" in cache, (
        f"send Cache-Control: no-cache so no cache replays an old stream; got {cache!r}"
    )
    accel = response.headers.get("x-accel-buffering", "").lower()
    assert accel == "no", f"send X-Accel-Buffering: no so nginx does not buffer the events; got {accel!r}"


@pytest.mark.exercise(COUNTDOWN)
def test_the_first_event_arrives_before_the_stream_ends(countdown_url: str) -> None:
    arrivals: list[float] = []
    with httpx.Client(timeout=10) as client:
        began = time.perf_counter()
        with client.stream("GET", countdown_url, params={"start": 3, "interval": 0.4}) as response:
            for _ in submission_free_parse(response.iter_text()):
                arrivals.append(time.perf_counter() - began)
        ended = time.perf_counter() - began
    assert arrivals, "the countdown sent no events"
    assert arrivals[0] < ended - 0.6, (
        f"the first event arrived at {arrivals[0]:.2f} s and the stream ended at {ended:.2f} s: send each event "
        "when it happens (yield it, then await asyncio.sleep), do not build the whole stream first"
    )


def submission_free_parse(chunks: Iterable[str]) -> Iterator[Fields]:
    """Incremental use of the reference parser: events as their blank line arrives."""
    text, seen = "", 0
    for chunk in chunks:
        text += chunk
        events = reference_parse(text)
        yield from events[seen:]
        seen = len(events)


@pytest.mark.exercise(COUNTDOWN)
@pytest.mark.parametrize("start", ["0", "-3", "101", "ten"])
def test_a_bad_start_is_refused_before_streaming(countdown_url: str, start: str) -> None:
    with httpx.Client(timeout=10) as client:
        try:
            response = client.get(countdown_url, params={"start": start, "interval": 0})
        except httpx.RemoteProtocolError:
            pytest.fail(
                f"start={start} answered 200 and then dropped the connection: an HTTPException raised inside the "
                "generator is too late — FastAPI has already wrapped the generator in a 200 event stream. Validate "
                "before streaming, e.g. Query(ge=1, le=100) or a dependency",
                pytrace=False,
            )
    assert response.status_code in (400, 422), (
        f"start={start} should be refused with 422 (or 400) before any event is sent; got {response.status_code}"
        + (
            " with an empty body: raising inside the generator ends the stream, it cannot change its 200 — validate "
            "before streaming, e.g. Query(ge=1, le=100) or a dependency"
            if response.status_code == 200
            else ""
        )
    )
