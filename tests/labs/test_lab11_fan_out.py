"""Checks for lab 11 — one stream to many clients, across worker processes, on Redis Streams.

The check starts a real Redis-protocol server (``start_redis``: trusted
infrastructure whose contents the check reads directly) and gives its URL to the
learner's ``make_log_app`` / ``make_fan_out_app``; the app is then served by
real worker processes (``serve_workers``) and read over sockets with httpx, the
way a browser's ``EventSource`` reads it: complete events only, the last
``id:`` seen is what a reconnect sends back. Pass or fail rests only on what
the check sees: events on the wire, the log in its own Redis server, the
workers' memory and Redis's list of clients. Known wrong answers:
``wrong/lab11.*``.
"""

from __future__ import annotations

import asyncio
import socket
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field

import httpx
import pytest
import redis.asyncio as aioredis

from streamcourse.memory import port_memory, port_memory_growth
from streamcourse.redis_server import RedisServer, start_redis
from streamcourse.workers import Workers, serve_workers

LOG = "lab11.shared_log"
FAN_OUT = "lab11.fan_out"
BOTH = [
    pytest.param(LOG, marks=pytest.mark.exercise(LOG), id="shared_log"),
    pytest.param(FAN_OUT, marks=pytest.mark.exercise(FAN_OUT), id="fan_out"),
]
TIMEOUT = httpx.Timeout(10.0)
BUFFER = 32  # the per-client buffer the checks ask make_fan_out_app for
WORKERS = 2  # worker processes the checks ask serve_workers for


# --------------------------------------------------------------------------- what a browser would make of the bytes


@dataclass
class Event:
    type: str
    data: str
    id: str | None  # the last event id in force when it was dispatched


@dataclass
class Parser:
    """The WHATWG event-stream rules, fed bytes as they come: only complete events are dispatched."""

    last_id: str | None = None
    events: list[Event] = field(default_factory=list)
    _rest: bytes = b""

    def feed(self, chunk: bytes) -> None:
        blocks = (self._rest + chunk).replace(b"\r\n", b"\n").split(b"\n\n")
        self._rest = blocks.pop()
        for block in blocks:
            self._dispatch(block.decode("utf-8", "replace"))

    def _dispatch(self, block: str) -> None:
        kind, data = "message", []
        for line in block.split("\n"):
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if name == "data":
                data.append(value)
            elif name == "event":
                kind = value
            elif name == "id" and "\0" not in value:
                self.last_id = value
        if data:
            self.events.append(Event(kind, "\n".join(data), self.last_id))

    @property
    def messages(self) -> list[Event]:
        return [e for e in self.events if e.type == "message"]


class Connection:
    """One open SSE request, read in the background."""

    def __init__(self, http: httpx.AsyncClient, url: str, last_id: str | None = None) -> None:
        self.url, self.parser = url, Parser(last_id)
        headers = {"Accept": "text/event-stream"} | ({"Last-Event-ID": last_id} if last_id else {})
        # a browser waits for ever on a quiet stream: a read timeout must not turn a stall into a reconnect
        self._request = http.build_request("GET", url + "/events", headers=headers, timeout=httpx.Timeout(10, read=60))
        self._http = http
        self.response: httpx.Response | None = None
        self.ended = asyncio.Event()
        self._task: asyncio.Task | None = None

    async def open(self) -> Connection:
        self.response = await asyncio.wait_for(self._http.send(self._request, stream=True), 10)
        self._task = asyncio.create_task(self._read())
        return self

    async def _read(self) -> None:
        try:
            async for chunk in self.response.aiter_raw():
                self.parser.feed(chunk)
        except httpx.HTTPError:
            pass
        finally:
            self.ended.set()

    async def messages(self, count: int, timeout: float = 10.0) -> list[Event]:
        """Wait until ``count`` messages have arrived (or the stream ended, or time ran out)."""
        deadline = time.monotonic() + timeout
        while len(self.parser.messages) < count and not self.ended.is_set() and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        return self.parser.messages

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
        if self.response is not None:
            await self.response.aclose()


async def follow(http: httpx.AsyncClient, urls: list[str], parser: Parser, stop: Callable[[], bool]) -> int:
    """An EventSource: reconnect (rotating over ``urls``) with the last id after every drop; returns connections made."""
    connections = 0
    while not stop():
        connection = Connection(http, urls[connections % len(urls)], parser.last_id)
        connection.parser = parser
        connections += 1
        try:
            await connection.open()
            while not connection.ended.is_set() and not stop():
                await asyncio.sleep(0.02)
        finally:
            await connection.close()
        await asyncio.sleep(0.05)  # a browser waits `retry:` ms; this one is quick
    return connections


# --------------------------------------------------------------------------- the check's own infrastructure


@pytest.fixture(scope="module")
def redis_server() -> Iterator[RedisServer]:
    server = start_redis(name=f"lab11-check-{uuid.uuid4().hex[:8]}")
    yield server
    server.stop()


@pytest.fixture
async def log(redis_server: RedisServer) -> AsyncIterator[Log]:
    client = aioredis.Redis.from_url(redis_server.url, decode_responses=True)
    yield Log(client, f"lab11:{uuid.uuid4().hex[:8]}")
    await client.aclose()


@dataclass
class Log:
    """The stream as the check sees it, straight from its own Redis server."""

    redis: aioredis.Redis
    stream: str

    async def entries(self) -> list[tuple[str, str]]:
        return [(i, f.get("data")) for i, f in await self.redis.xrange(self.stream, "-", "+")]

    async def add(self, texts: list[str], maxlen: int = 100_000) -> list[str]:
        """Another producer writing to the stream (a second service, say): entries with one field, data."""
        pipe = self.redis.pipeline(transaction=False)
        for text in texts:
            pipe.xadd(self.stream, {"data": text}, maxlen=maxlen, approximate=True)
        return await pipe.execute()


@pytest.fixture
def start(submission, redis_server: RedisServer) -> Iterator[Callable[..., Workers]]:
    """Serve the learner's app for ``exercise`` from real worker processes."""
    running: list[Workers] = []

    def run(exercise: str, stream: str, workers: int = WORKERS, maxlen: int = 1000) -> Workers:
        if exercise == LOG:
            app = submission.make_log_app(redis_server.url, stream, maxlen)
        else:
            app = submission.make_fan_out_app(redis_server.url, stream, maxlen, BUFFER)
        try:
            group = serve_workers(app, workers, name=f"lab11-check-{uuid.uuid4().hex[:8]}")
        except RuntimeError as exc:
            pytest.fail(f"your app did not start in {workers} worker processes: {exc}", pytrace=False)
        running.append(group)
        return group

    yield run
    for group in running:
        group.stop()


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=TIMEOUT, limits=httpx.Limits(max_connections=200)) as client:
        yield client


async def publish(http: httpx.AsyncClient, url: str, text: str) -> str:
    response = await http.post(url + "/publish", content=text.encode())
    assert response.status_code == 200, f"POST /publish answered {response.status_code}: {response.text[:200]}"
    body = response.json()
    assert isinstance(body, dict) and type(body.get("id")) is str, (
        f'POST /publish should answer with the new entry\'s stream id, like {{"id": "1718000000000-0"}}; got {body!r}'
    )
    return body["id"]


def texts(n: int, prefix: str = "event") -> list[str]:
    return [f"{prefix} {i}" for i in range(1, n + 1)]


# --------------------------------------------------------------------------- one log, every worker


@pytest.mark.parametrize("exercise", BOTH)
@pytest.mark.behaviour("lab11.shared_log's log, kept by every fan-out answer (its wrong answers are shared_log's)")
async def test_publish_appends_to_the_stream_and_answers_its_id(exercise, start, log, http) -> None:
    workers = start(exercise, log.stream, workers=1)
    ids = [await publish(http, workers.url, text) for text in texts(3)]
    assert await log.entries() == list(zip(ids, texts(3), strict=True)), (
        "POST /publish should XADD the request body to the stream as the field `data`, and answer its id"
    )


@pytest.mark.parametrize("exercise", BOTH)
@pytest.mark.behaviour(
    "lab11.shared_log's capped log, kept by every fan-out answer (shared_log/no_maxlen shows the mistake)"
)
async def test_the_stream_is_capped_with_maxlen(exercise, start, log, http) -> None:
    workers = start(exercise, log.stream, workers=1, maxlen=50)
    for text in texts(300):
        await publish(http, workers.url, text)
    length = await log.redis.xlen(log.stream)
    assert 50 <= length <= 200, (
        f"after 300 publishes with maxlen=50 the stream holds {length} entries: add with MAXLEN ~ maxlen "
        "(xadd(..., maxlen=maxlen, approximate=True)) so the log stays bounded but keeps at least maxlen"
    )


@pytest.mark.parametrize("exercise", BOTH)
@pytest.mark.behaviour("the whole point of both exercises; shared_log's wrong answers show the ways to miss it")
async def test_every_client_on_every_worker_gets_every_event_once_in_order(exercise, start, log, http) -> None:
    workers = start(exercise, log.stream, workers=2)
    clients = [await Connection(http, url).open() for url in workers.urls for _ in range(3)]
    sent = texts(20) + ["a line\nand the next line"]
    ids = [await publish(http, workers.urls[i % 2], text) for i, text in enumerate(sent)]  # to both workers
    try:
        for n, client in enumerate(clients):
            got = await client.messages(len(sent))
            worker = n // 3
            assert [e.data for e in got] == sent, (
                f"a client of worker {worker} got {len(got)} of the {len(sent)} events published to both workers, "
                f"{'only those published to its own worker: an in-process list is per worker — ' if len(got) in (10, 11) else ''}"
                "every client must get every event of the shared log, once, in order "
                "(a multi-line event needs one data: line per line)"
            )
            assert [e.id for e in got] == ids, (
                "give every event its stream id as its SSE `id:` — that is what a client resumes from"
            )
    finally:
        for client in clients:
            await client.close()


@pytest.mark.parametrize("exercise", BOTH)
async def test_a_new_client_gets_the_retained_log_then_live_events(exercise, start, log, http) -> None:
    await log.add(texts(10, "before"))
    workers = start(exercise, log.stream)
    client = await Connection(http, workers.urls[0]).open()
    try:
        await client.messages(10)
        await log.add(texts(5, "after"))
        got = [e.data for e in await client.messages(15)]
    finally:
        await client.close()
    assert got[:10] == texts(10, "before"), (
        f"a client without Last-Event-ID should first get the log's entries; got {got[:3]}…"
    )
    assert got[10:] == texts(5, "after"), (
        f"…then each entry added while it is connected, as it is added; got {got[10:]} — "
        "read on from the last id you sent (XREAD BLOCK with that id), not from $"
    )


@pytest.mark.parametrize("exercise", BOTH)
async def test_a_reconnect_to_another_worker_resumes_after_last_event_id(exercise, start, log, http) -> None:
    workers = start(exercise, log.stream)
    first = await Connection(http, workers.urls[0]).open()
    await log.add(texts(10))
    seen = await first.messages(10)
    await first.close()
    assert len(seen) == 10, f"the first connection got {len(seen)} of 10 events"
    missed = await log.add(texts(10, "while away"))  # published while the client was disconnected

    back = await Connection(http, workers.urls[1], last_id=seen[-1].id).open()  # the OTHER worker
    try:
        got = await back.messages(10)
        live = await publish(http, workers.urls[0], "live")
        got = await back.messages(11)
    finally:
        await back.close()
    assert [e.data for e in got[:1]] == ["while away 1"], (
        f"reconnecting to another worker with Last-Event-ID: {seen[-1].id} should start with the first event after it; "
        f"got {[e.data for e in got[:2]]} — resume AFTER the id (XREAD from it, or XRANGE with an exclusive start '(' + id), "
        "never from $ and never at the id itself"
    )
    assert [e.id for e in got] == missed + [live], (
        "after the reconnect: every missed event once, in order, then live ones"
    )


@pytest.mark.parametrize("exercise", BOTH)
@pytest.mark.behaviour(
    "shared_log's reset, kept by every fan-out answer (shared_log/no_reset_after_trimming shows the mistake)"
)
async def test_a_client_back_after_trimming_is_told_with_a_reset_event(exercise, start, log, http) -> None:
    old = await log.add(texts(5, "old"))
    await log.add(texts(600, "new"), maxlen=50)  # the log now starts long after the client's last id
    retained = await log.entries()
    workers = start(exercise, log.stream)
    client = await Connection(http, workers.urls[1], last_id=old[-1]).open()
    try:
        await client.messages(len(retained))
        events = client.parser.events
    finally:
        await client.close()
    assert events and events[0].type == "reset", (
        f"Last-Event-ID: {old[-1]} is older than the log's first entry {retained[0][0]} (the log was trimmed): "
        "send an `event: reset` first, so the client knows it missed events; "
        f"got first {[(e.type, e.data[:20]) for e in events[:1]]}"
    )
    assert [(e.id, e.data) for e in events[1:]] == retained, "after the reset, send what the log still holds, in order"


@pytest.mark.parametrize("exercise", BOTH)
async def test_a_client_still_within_the_log_gets_no_reset(exercise, start, log, http) -> None:
    await log.add(texts(600), maxlen=50)
    retained = await log.entries()
    workers = start(exercise, log.stream)
    client = await Connection(http, workers.urls[0], last_id=retained[9][0]).open()
    try:
        await client.messages(len(retained) - 10)
        events = client.parser.events
    finally:
        await client.close()
    assert [e.type for e in events[:1]] == ["message"], (
        f"Last-Event-ID: {retained[9][0]} is still in the log: no reset, just the events after it; "
        f"got first {[e.type for e in events[:1]]}"
    )
    assert [(e.id, e.data) for e in events] == retained[10:], (
        "send exactly the retained events after Last-Event-ID, in order"
    )


@pytest.mark.parametrize("exercise", BOTH)
@pytest.mark.behaviour(
    "shared_log's id check, kept by every fan-out answer (shared_log/trusts_the_header shows the mistake)"
)
async def test_a_garbage_last_event_id_gets_400_not_a_crash(exercise, start, log, http) -> None:
    workers = start(exercise, log.stream, workers=1)
    for garbage in ["abc", "1-x", "-5", "7; DROP", "1-2-3"]:
        async with http.stream("GET", workers.url + "/events", headers={"Last-Event-ID": garbage}) as response:
            pass  # the status line is all this check needs: a 200 here would be an endless stream
        assert response.status_code == 400, (
            f"Last-Event-ID: {garbage!r} is not a stream id (digits-digits): answer 400 Bad Request before streaming, "
            f"never a 500 or a replay; got {response.status_code}"
        )


# --------------------------------------------------------------------------- a client that stops reading


class FrozenClient:
    """Connects, then reads nothing: the server's socket buffers fill and its sends block."""

    def __init__(self, url: str) -> None:
        host, port = url.removeprefix("http://").split(":")
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        self.sock.connect((host, int(port)))
        # HTTP/1.0: the body comes unframed, so the bytes are the event stream itself
        self.sock.sendall(f"GET /events HTTP/1.0\r\nHost: {host}\r\nAccept: text/event-stream\r\n\r\n".encode())

    def read_to_end(self, within: float) -> tuple[bytes, bool]:
        """Start reading again: everything until the server closes (True) or ``within`` seconds pass (False)."""
        self.sock.settimeout(0.5)
        data, deadline = b"", time.monotonic() + within
        while time.monotonic() < deadline:
            try:
                chunk = self.sock.recv(1 << 16)
            except TimeoutError:
                continue
            if not chunk:
                return data, True
            data += chunk
        return data, False

    def close(self) -> None:
        self.sock.close()


def private_memory(workers: Workers, index: int, before: dict[int, int] | None = None) -> dict[int, int]:
    """USS of whatever serves worker ``index``'s port, found by its sockets (a reported pid is never believed).

    USS, not RSS: a forked worker reuses heap pages it inherited (counted in RSS
    already), so RSS can hide what it allocates; those pages become its own (USS) when written.
    """
    memory = port_memory(workers.ports[index], also=before or {})
    if not memory:
        pytest.fail(f"found no process serving worker {index}'s port {workers.ports[index]}", pytrace=False)
    return memory


FLOOD = 5000  # entries of 4 KiB: 20 MiB, five times what a frozen socket's buffers absorb
PAYLOAD = "x" * 4096
STALL = 5.0  # seconds without a single new event for a reading client: it is stalled
FLOOD_DEADLINE = 90.0  # seconds for the whole flood to reach both readers, however slow the machine


def numbers(parser: Parser) -> list[int]:
    return [int(e.data.split(" ", 1)[0]) for e in parser.messages]


async def flood_with_a_frozen_client(
    start, log, http, exercise
) -> tuple[Workers, FrozenClient, list[Parser], dict[int, int]]:
    """A frozen client and a reading one on worker 0, a reading one on worker 1; then 20 MiB are published."""
    workers = start(exercise, log.stream, maxlen=100_000)
    frozen = FrozenClient(workers.urls[0])
    parsers = [Parser(), Parser()]
    done = lambda: all(len(p.messages) > FLOOD for p in parsers)  # noqa: E731
    readers = [asyncio.create_task(follow(http, [url], p, done)) for url, p in zip(workers.urls, parsers, strict=True)]
    await log.add(["0 ready"])  # event 0: once both readers have it, all three clients are connected
    deadline = time.monotonic() + 10
    while not all(p.messages for p in parsers) and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    before: dict[int, int] = {}
    for first in range(1, FLOOD + 1, 500):
        await log.add([f"{n} {PAYLOAD}" for n in range(first, min(first + 500, FLOOD + 1))], maxlen=100_000)
        if first == 1:  # measure from here: serving the first 2 MiB makes pages the worker inherited its own (USS)
            deadline = time.monotonic() + 10
            while not all(len(p.messages) > 500 for p in parsers) and time.monotonic() < deadline:
                await asyncio.sleep(0.02)
            before = private_memory(workers, 0)
    counts, changed = [0, 0], [time.monotonic()] * 2
    give_up = time.monotonic() + FLOOD_DEADLINE  # a wrong answer may keep a reader busy for ever (replays)
    while not done() and time.monotonic() < give_up:  # ... or until one reader got nothing new for STALL seconds
        await asyncio.sleep(0.1)
        for i, parser in enumerate(parsers):
            if len(parser.messages) != counts[i]:
                counts[i], changed[i] = len(parser.messages), time.monotonic()
        if any(n <= FLOOD and time.monotonic() - t > STALL for n, t in zip(counts, changed, strict=True)):
            break
    for reader in readers:
        reader.cancel()
    await asyncio.gather(*readers, return_exceptions=True)
    return workers, frozen, parsers, before


@pytest.mark.parametrize("exercise", BOTH)
async def test_a_client_that_stops_reading_does_not_stall_the_others(exercise, start, log, http) -> None:
    workers, frozen, parsers, _ = await flood_with_a_frozen_client(start, log, http, exercise)
    frozen.close()
    for worker, parser in enumerate(parsers):
        got = numbers(parser)
        assert got == list(range(FLOOD + 1)), (
            f"while one client of worker 0 read nothing, a reading client of worker {worker} got {len(got)} of {FLOOD + 1} "
            f"events, then nothing for {STALL:g} s: never wait for one client (an `await queue.put()` into a full queue, "
            "one reader that sends to everyone in turn) — give each client its own buffer and drop or disconnect the slow one"
        )


@pytest.mark.parametrize("exercise", BOTH)
@pytest.mark.behaviour(
    "every answer must bound what a frozen client holds (fan_out/unbounded_queue_per_client shows the mistake)"
)
async def test_a_client_that_stops_reading_costs_bounded_memory(exercise, start, log, http) -> None:
    workers, frozen, _, before = await flood_with_a_frozen_client(start, log, http, exercise)
    after = private_memory(workers, 0, before)
    grown = port_memory_growth(before, after)
    frozen.close()
    assert grown < 10 * 2**20, (
        f"a client that read nothing while 18 MiB were published made its worker grow by {grown / 2**20:.0f} MiB: "
        "bound what waits for each client (a queue with a maxsize, drop or disconnect when it is full) — "
        "the log in Redis keeps the events, so a dropped client loses nothing "
        f"(MiB held by each process serving its port, before and after: {mib(before)}, {mib(after)})"
    )


def mib(memory: dict[int, int]) -> dict[int, float]:
    return {pid: round(uss / 2**20, 1) for pid, uss in memory.items()}


# --------------------------------------------------------------------------- lab11.fan_out: one reader per worker


def blocked_xreads(client_list: list[dict]) -> int:
    return sum(1 for c in client_list if c.get("cmd") == "xread" and "b" in c.get("flags", ""))


@pytest.mark.exercise(FAN_OUT)
async def test_each_worker_reads_the_log_once_for_all_its_clients(start, log, http) -> None:
    workers = start(FAN_OUT, log.stream)
    await log.add(["hello"])
    clients = [await Connection(http, url).open() for url in workers.urls for _ in range(8)]
    try:
        for client in clients:
            await client.messages(1)
        most = 0
        for _ in range(15):  # Redis's own list of its clients, for 1.5 s
            most = max(most, blocked_xreads(await log.redis.client_list()))
            await asyncio.sleep(0.1)
    finally:
        for client in clients:
            await client.close()
    assert most <= 2 * WORKERS, (
        f"16 clients on 2 workers kept {most} XREAD BLOCK calls waiting in Redis: one reader task per worker "
        "should read the log for all of that worker's clients and hand each entry to their buffers"
    )


@pytest.mark.exercise(FAN_OUT)
async def test_a_client_whose_buffer_overflows_is_disconnected_and_catches_up_from_the_log(start, log, http) -> None:
    workers, frozen, _, _ = await flood_with_a_frozen_client(start, log, http, FAN_OUT)
    data, closed = await asyncio.to_thread(frozen.read_to_end, 15)
    frozen.close()
    assert closed, (
        f"a client {FLOOD} events behind (its buffer holds {BUFFER}) was never disconnected: once its buffer is full, "
        "end its stream, so it reconnects with Last-Event-ID and reads what it missed from the log"
    )
    parser = Parser()
    parser.feed(data.partition(b"\r\n\r\n")[2])
    got = numbers(parser)
    assert got == list(range(len(got))), "what a slow client did get must be the first events, in order, none skipped"
    back = await Connection(http, workers.urls[1], last_id=parser.last_id).open()
    try:
        await back.messages(FLOOD + 1 - len(got), timeout=20)
        rest = numbers(back.parser)
    finally:
        await back.close()
    assert got + rest == list(range(FLOOD + 1)), (
        f"after the disconnect, a reconnect with Last-Event-ID: {parser.last_id} should bring the other "
        f"{FLOOD + 1 - len(got)} events, once each, in order; got {len(rest)}"
    )
