"""Checks for lab 04 — reconnection: ``make_app(log, retry_ms)`` resumes after ``Last-Event-ID``.

Every check serves the learner's app on a real socket and reads it with httpx,
parsing the event stream the way a browser's ``EventSource`` does: only complete
events count, and the last ``id:`` seen is what a reconnecting client sends back.
The known wrong answers live in ``wrong/lab04.*``.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import httpx
import pytest

from streamcourse.server import Server, serve

RESUMABLE = "lab04.resumable"
TIMEOUT = httpx.Timeout(10.0)


@dataclass
class Parsed:
    """What an EventSource makes of some bytes: dispatched data, the last id in force, the retry."""

    data: list[str] = field(default_factory=list)
    ids: list[str | None] = field(default_factory=list)  # the last event id at each dispatch
    last_id: str | None = None
    retry: int | None = None


def parse(text: str, last_id: str | None = None) -> Parsed:
    """Parse the complete events of ``text`` (an unfinished last event is dropped, as a browser does)."""
    out = Parsed(last_id=last_id)
    blocks = text.replace("\r\n", "\n").replace("\r", "\n").split("\n\n")
    blocks.pop()  # whatever follows the last blank line is not a complete event
    for block in blocks:
        data: list[str] = []
        for line in block.split("\n"):
            if not line or line.startswith(":"):
                continue
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if name == "data":
                data.append(value)
            elif name == "id" and "\0" not in value:
                out.last_id = value
            elif name == "retry" and value.isdigit():
                out.retry = int(value)
        if data:
            out.data.append("\n".join(data))
            out.ids.append(out.last_id)
    return out


def log_of(submission, n: int, step: int = 1) -> list:
    LogEvent = submission.LogEvent
    return [LogEvent(i * step, f"event {i * step}") for i in range(1, n + 1)]


@pytest.fixture
def start(submission) -> AsyncIterator:
    servers: list[Server] = []

    def run(log: list, retry_ms: int = 1000) -> str:
        app = submission.make_app(log, retry_ms)
        server = serve(app, name=f"lab04-check-{uuid.uuid4().hex[:8]}")
        servers.append(server)
        return server.url + "/events"

    yield run
    for server in servers:
        server.stop()


async def get(url: str, last_id: str | None = None) -> httpx.Response:
    headers = {"Accept": "text/event-stream"}
    if last_id is not None:
        headers["Last-Event-ID"] = last_id
    async with httpx.AsyncClient(timeout=TIMEOUT) as client:
        return await asyncio.wait_for(client.get(url, headers=headers), 15)


@pytest.mark.exercise(RESUMABLE)
async def test_a_new_client_gets_every_event_with_its_id(submission, start) -> None:
    log = log_of(submission, 20, step=5)
    response = await get(start(log))
    assert response.status_code == 200, (
        f"without Last-Event-ID the answer should be 200 with every event; got {response.status_code}"
    )
    got = parse(response.text)
    assert got.data == [e.data for e in log], "without Last-Event-ID, send every event of the log, in order, each once"
    assert got.ids == [str(e.id) for e in log], (
        "give every event its own `id:` field (the log event's id) — without ids a client cannot resume"
    )


@pytest.mark.exercise(RESUMABLE)
async def test_it_is_served_as_an_event_stream(submission, start) -> None:
    response = await get(start(log_of(submission, 3)))
    kind = response.headers.get("content-type", "")
    assert kind.startswith("text/event-stream"), (
        f"serve the events as text/event-stream (EventSource refuses anything else); got {kind!r}"
    )


def retry_before_the_first_event(text: str) -> int | None:
    """The ``retry:`` a client has received by the time the first event is dispatched."""
    blocks = text.replace("\r\n", "\n").replace("\r", "\n").split("\n\n")[:-1]
    retry = None
    for block in blocks:
        parsed = parse(block + "\n\n")
        retry = parsed.retry if parsed.retry is not None else retry
        if parsed.data:
            break
    return retry


@pytest.mark.exercise(RESUMABLE)
async def test_the_stream_announces_its_retry_delay_before_the_first_event(submission, start) -> None:
    response = await get(start(log_of(submission, 3), retry_ms=1234))
    assert parse(response.text).retry == 1234, (
        "send a `retry:` field carrying retry_ms (here 1234): the spec sets no default reconnection delay "
        "(it is up to each browser, not a standard 3 s), so a server that cares about the delay must say it"
    )
    assert retry_before_the_first_event(response.text) == 1234, (
        "send `retry:` before the first event, so a client cut off after one event already knows how long to wait"
    )


@pytest.mark.exercise(RESUMABLE)
async def test_it_resumes_after_the_last_event_id(submission, start) -> None:
    log = log_of(submission, 500)
    response = await get(start(log), last_id="250")
    got = parse(response.text)
    assert got.data[:1] == ["event 251"], (
        f"with Last-Event-ID: 250 the first event should be 251 — the client already has 250; got {got.data[:1]}"
    )
    assert got.data == [e.data for e in log[250:]], "after Last-Event-ID: 250 send events 251…500, each once, in order"


@pytest.mark.exercise(RESUMABLE)
async def test_random_drops_and_reconnects_deliver_every_event_exactly_once(submission, start) -> None:
    """A client cut at seeded random byte offsets reconnects with the last id it parsed, like EventSource."""
    log = log_of(submission, 500)
    url = start(log)
    rng = random.Random(404)
    received: list[str] = []
    last_id: str | None = None
    connections = 0
    async with httpx.AsyncClient(timeout=TIMEOUT) as client:
        while connections < 120 and len(received) <= 1500:
            connections += 1
            headers = {"Accept": "text/event-stream"} | ({"Last-Event-ID": last_id} if last_id is not None else {})
            cut = rng.randint(1, 1500)
            body = b""
            async with client.stream("GET", url, headers=headers) as response:
                if response.status_code == 204:
                    break
                assert response.status_code == 200, (
                    f"a reconnect with Last-Event-ID: {last_id} got status {response.status_code}"
                )
                async for chunk in response.aiter_raw():
                    body += chunk
                    if len(body) >= cut:
                        body = body[:cut]  # the connection drops here
                        break
            parsed = parse(body.decode("utf-8", "replace"), last_id)
            received += parsed.data
            last_id = parsed.last_id
    expected = [e.data for e in log]
    duplicates = len(received) - len(set(received))
    assert duplicates == 0, (
        f"after {connections} reconnects the client had {duplicates} duplicated events: every event needs an id, "
        "and a reconnect must start AFTER Last-Event-ID, not at it"
    )
    assert received == expected, (
        f"after {connections} reconnects the client had {len(received)} of 500 events: each must arrive once, in order"
    )
    assert connections < 120, "the client kept reconnecting: once it has every event, answer 204 No Content"


@pytest.mark.exercise(RESUMABLE)
async def test_an_id_missing_from_the_log_resumes_after_it_without_replay(submission, start) -> None:
    log = log_of(submission, 50, step=2)  # ids 2, 4, …, 100: an odd id is not in the log
    response = await get(start(log), last_id="51")
    got = parse(response.text)
    assert got.data[:1] == ["event 52"], (
        "Last-Event-ID: 51 is not in the log (ids are 2, 4, 6…): send the events with ids greater than 51, "
        f"starting at 52 — do not search for an equal id and start over; got first {got.data[:1]}"
    )


@pytest.mark.exercise(RESUMABLE)
async def test_a_client_that_has_every_event_gets_204(submission, start) -> None:
    response = await get(start(log_of(submission, 10)), last_id="10")
    assert response.status_code == 204, (
        f"Last-Event-ID: 10 is the last event: answer 204 No Content so EventSource stops reconnecting; got {response.status_code}"
        " — a 200 stream always gets a reconnect, whatever it says (an `event: close` stops nothing unless the page "
        "listens for it and calls close())"
    )


@pytest.mark.exercise(RESUMABLE)
async def test_an_id_from_the_future_gets_204_not_a_replay(submission, start) -> None:
    response = await get(start(log_of(submission, 10)), last_id="99999")
    replayed = len(parse(response.text).data) if response.status_code == 200 else 0
    assert response.status_code == 204, (
        f"Last-Event-ID: 99999 is after every event in the log: there is nothing to send, so answer 204 No Content; "
        f"got status {response.status_code} with {replayed} events"
    )


@pytest.mark.exercise(RESUMABLE)
@pytest.mark.parametrize("garbage", ["abc", "-3", "1.5", "7; DROP TABLE"])
async def test_a_garbage_id_gets_400_not_a_crash_or_replay(submission, start, garbage: str) -> None:
    response = await get(start(log_of(submission, 10)), last_id=garbage)
    assert response.status_code != 500, (
        f"Last-Event-ID: {garbage!r} crashed the server (500): check the header before using it"
    )
    assert response.status_code == 400, (
        f"Last-Event-ID: {garbage!r} is not an id this server sends: answer 400 Bad Request (not a replay); "
        f"got {response.status_code}"
    )
