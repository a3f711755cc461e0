"""One stream to many SSE clients: 4 workers on Redis Streams beside 1 process broadcasting in memory.

Run it from the repository root with the project's Python::

    python bench/fanout.py               # 100 and 1,000 clients, 100 events/s for 5 s
    python bench/fanout.py 5 100 1000    # seconds, then client counts

For each client count and each design it prints the events per second the
producer managed to publish (below 100 when publishing itself has to wait),
deliveries per second (one event reaching one client counts once), the p50/p99
delay from publish to arrival, and whether every client got every event in
order. Then, for each
design, the memory of a worker that serves one frozen client (it connects and
never reads) once 20 MiB of events were published — its private memory (USS),
the pages only it holds; RSS would hide what a forked worker allocates in heap
pages it inherited — and, for contrast, the
same with no bound on the frozen client's buffer.

The two designs (the lesson's and the lab's, in short):

* ``redis``: the app runs in 4 worker processes (``serve_workers``); a producer
  XADDs to a Redis stream; each worker has ONE reader (``XREAD BLOCK`` from the
  last id) that offers each batch to its clients' bounded buffers.
* ``memory``: the app runs in 1 worker process; the producer POSTs each event,
  and the process offers it to its clients' bounded buffers.

In both, a client's stream sends everything waiting in its buffer as one chunk
(under load, fewer and larger writes), and a client whose buffer is full is
disconnected. The listeners (``streamcourse.loadgen``) run in a process of their
own, so the producer keeps its rate. The machine is shared: the load average is
printed before and after.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import sys
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import psutil
import redis.asyncio as aioredis
from fastapi import FastAPI, Request
from fastapi.sse import EventSourceResponse, format_sse_event

from streamcourse.loadgen import Delivery, listen, open_listeners, stamp
from streamcourse.redis_server import start_redis
from streamcourse.workers import Workers, serve_workers

RATE = 100  # events per second
BUFFER = 1000  # entries waiting per client before it is disconnected (10 s of events)
FROZEN_BUFFER = 100  # the same bound in the frozen-client phase, where entries are 4 KiB
TARGET_P99_MS = 250.0
FLOOD, PAYLOAD = 5000, 4096  # the frozen-client phase: 20 MiB


class Subscriber:
    """One client's buffer: at most ``limit`` entries (0: no limit); full means the client is dropped."""

    def __init__(self, limit: int) -> None:
        self.limit, self.pending, self.ready, self.dropped = limit, deque(), asyncio.Event(), False

    def offer(self, entries: list[tuple[str, str]]) -> bool:
        if self.limit and len(self.pending) + len(entries) > self.limit:
            self.dropped = True
            self.pending.clear()
        else:
            self.pending.extend(entries)
        self.ready.set()
        return not self.dropped

    async def take(self) -> list[tuple[str, str]]:
        await self.ready.wait()
        self.ready.clear()
        entries = list(self.pending)
        self.pending.clear()
        return entries


def streaming_app(subscribers: set[Subscriber], limit: int, lifespan: Any = None) -> FastAPI:
    """GET /events: each client's buffer, sent as one chunk per wake-up."""
    app = FastAPI(lifespan=lifespan)

    @app.get("/events")
    async def events() -> EventSourceResponse:
        async def chunks() -> AsyncIterator[bytes]:
            me = Subscriber(limit)
            subscribers.add(me)
            try:
                yield format_sse_event(comment="subscribed")
                while not me.dropped:
                    yield b"".join(format_sse_event(data_str=data, id=i) for i, data in await me.take())
            finally:
                subscribers.discard(me)

        return EventSourceResponse(chunks())

    return app


def offer_all(subscribers: set[Subscriber], entries: list[tuple[str, str]]) -> None:
    for subscriber in list(subscribers):
        if not subscriber.offer(entries):
            subscribers.discard(subscriber)


def redis_app(redis_url: str, stream: str, limit: int = BUFFER) -> FastAPI:
    subscribers: set[Subscriber] = set()

    async def reader(r: aioredis.Redis) -> None:
        newest = await r.xrevrange(stream, count=1)
        last = newest[0][0] if newest else "0-0"
        while True:
            for _name, found in await r.xread({stream: last}, block=15_000, count=limit or 1000):
                last = found[-1][0]
                offer_all(subscribers, [(i, f["data"]) for i, f in found])

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        r = aioredis.Redis.from_url(redis_url, decode_responses=True)
        task = asyncio.create_task(reader(r))
        yield
        task.cancel()
        await r.aclose()

    return streaming_app(subscribers, limit, lifespan)


def memory_app(limit: int = BUFFER) -> FastAPI:
    subscribers: set[Subscriber] = set()
    app = streaming_app(subscribers, limit)
    counter = iter(range(1, 1 << 62))

    @app.post("/publish")
    async def publish(request: Request) -> None:
        offer_all(subscribers, [(f"{next(counter)}-0", (await request.body()).decode())])

    return app


# --------------------------------------------------------------------------- the listeners' own process


@dataclass
class Plan:
    urls: list[str]
    clients: int
    events: int
    settle: float = 3.0


def listeners_main(plan: Plan, pipe: Any) -> None:
    """In a process of its own: open the listeners, say so, collect until every event is in (or settle runs out)."""

    async def run() -> Delivery:
        listeners = await open_listeners(plan.urls, plan.clients)
        pipe.send("ready")
        started = await asyncio.to_thread(pipe.recv)  # the producer is done; when it began (time.monotonic)
        deadline = time.monotonic() + plan.settle
        while time.monotonic() < deadline and any(len(x.numbers) < plan.events for x in listeners):
            await asyncio.sleep(0.05)
        seconds = max((x.last_at for x in listeners), default=started) - started
        for x in listeners:
            x.close()
        expected = list(range(plan.events))
        return Delivery(
            plan.clients,
            plan.events,
            seconds,
            [d for x in listeners for d in x.delays],
            sum(x.numbers == expected for x in listeners),
        )

    pipe.send(asyncio.run(run()))


async def paced(publish: Callable[[str], Awaitable[object]], events: int, rate: float, size: int = 0) -> None:
    started = time.monotonic()
    for number in range(events):
        await publish(stamp(number, size))
        await asyncio.sleep(max(0.0, started + (number + 1) / rate - time.monotonic()))


@dataclass
class Run:
    delivery: Delivery
    published_per_second: float  # what the producer managed: below RATE when publishing itself waits


async def deliver(urls: list[str], clients: int, events: int, publish: Callable[[str], Awaitable[object]]) -> Run:
    parent, child = multiprocessing.get_context("spawn").Pipe()
    process = multiprocessing.get_context("spawn").Process(
        target=listeners_main, args=(Plan(urls, clients, events), child)
    )
    process.start()
    try:
        if not await asyncio.to_thread(parent.poll, 120):
            raise RuntimeError("the listeners did not connect within 120 s")
        parent.recv()
        started = time.monotonic()
        await paced(publish, events, RATE)
        published = events / (time.monotonic() - started)
        parent.send(started)
        return Run(await asyncio.to_thread(parent.recv), published)
    finally:
        process.join(30)


def private_memory(pid: int) -> int:
    """USS: memory only this process holds. A forked worker's RSS counts the heap pages it inherited,
    which it then reuses, so RSS growth would hide what it allocates; written pages become its own (USS)."""
    return psutil.Process(pid).memory_full_info().uss


async def frozen_cost(group: Workers, publish_many: Callable[[list[str]], Awaitable[object]]) -> tuple[int, int]:
    """Worker 0 with one frozen and one healthy client once 20 MiB were published: (private memory, growth after warm-up)."""
    healthy = await listen(group.urls[0] + "/events")
    frozen = await listen(group.urls[0] + "/events", frozen=True)
    await publish_many([stamp(n, PAYLOAD) for n in range(500)])  # warm-up: the code paths the flood takes
    deadline = time.monotonic() + 60
    while len(healthy.numbers) < 500 and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    before = private_memory(group.pids[0])  # (the first use of inherited pages copies them: not the flood's cost)
    for first in range(500, FLOOD, 500):
        await publish_many([stamp(n, PAYLOAD) for n in range(first, first + 500)])
    while len(healthy.numbers) < FLOOD and not healthy.closed.is_set() and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    after = private_memory(group.pids[0])  # the frozen client is still connected: what it holds is held now
    healthy.close()
    frozen.close()
    return after, after - before


# --------------------------------------------------------------------------- the run


def line(design: str, run: Run) -> str:
    delivery = run.delivery
    ok = "yes" if delivery.complete == delivery.clients else f"NO ({delivery.complete}/{delivery.clients})"
    return (
        f"{design:<22} {delivery.clients:>6,} {run.published_per_second:>11.0f} {delivery.events_per_second:>14,.0f} "
        f"{delivery.p(50):>9.1f} {delivery.p(99):>9.1f}  {ok}"
    )


async def main(seconds: float, counts: list[int]) -> int:
    events = round(RATE * seconds)
    print(
        f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} at the start; {RATE} events/s for {seconds:g} s"
    )
    server = start_redis(name="bench-redis")
    print(f"{server.version}; {events} events per run\n")
    print(
        f"{'design':<22} {'clients':>6} {'published/s':>11} {'deliveries/s':>14} {'p50 ms':>9} {'p99 ms':>9}  "
        "every event, in order"
    )
    r = aioredis.Redis.from_url(server.url, decode_responses=True)
    results: dict[tuple[str, int], Run] = {}
    try:
        for clients in counts:
            await r.delete("bench")
            group = serve_workers(redis_app(server.url, "bench"), 4, name="bench-redis-workers")
            results["redis", clients] = await deliver(
                [u + "/events" for u in group.urls],
                clients,
                events,
                lambda t: r.xadd("bench", {"data": t}, maxlen=10_000),
            )
            group.stop()
            print(line("4 workers + Redis", results["redis", clients]), flush=True)

            single = serve_workers(memory_app(), 1, name="bench-memory-worker")
            async with httpx.AsyncClient(base_url=single.url, timeout=30) as http:
                results["memory", clients] = await deliver(
                    [single.url + "/events"], clients, events, lambda t: http.post("/publish", content=t)
                )
            single.stop()
            print(line("1 process, in memory", results["memory", clients]), flush=True)

        print(
            f"\nprivate memory (USS) of the worker serving one frozen client, once {FLOOD * PAYLOAD / 2**20:.0f} MiB "
            "were published:"
        )

        async def add_to_redis(texts: list[str]) -> None:
            pipe = r.pipeline(transaction=False)
            for text in texts:
                pipe.xadd("flood", {"data": text})
            await pipe.execute()

        for label, limit in [(f"buffer {FROZEN_BUFFER} entries", FROZEN_BUFFER), ("no bound (for contrast)", 0)]:
            await r.delete("flood")
            group = serve_workers(redis_app(server.url, "flood", limit), 4, name="bench-frozen")
            used, grown = await frozen_cost(group, add_to_redis)
            group.stop()
            print(f"  4 workers + Redis, {label:<24} {used / 2**20:6.1f} MiB, grew {grown / 2**20:6.1f} MiB")

            single = serve_workers(memory_app(limit), 1, name="bench-frozen-memory")
            async with httpx.AsyncClient(base_url=single.url, timeout=30) as http:

                async def post_all(texts: list[str]) -> None:
                    await asyncio.gather(*(http.post("/publish", content=t) for t in texts))

                used, grown = await frozen_cost(single, post_all)
            single.stop()
            print(f"  1 process, in memory, {label:<21} {used / 2**20:6.1f} MiB, grew {grown / 2**20:6.1f} MiB")
    finally:
        await r.aclose()
        server.stop()
    print(f"\nload average {os.getloadavg()[0]:.2f} at the end")
    biggest = results.get(("redis", max(counts)))
    if biggest is not None:
        d = biggest.delivery
        met = d.complete == d.clients and d.p(99) < TARGET_P99_MS and biggest.published_per_second > 0.95 * RATE
        print(
            f"target: {max(counts):,} clients on 4 workers, every event, p99 under {TARGET_P99_MS:.0f} ms "
            f"at {RATE} events/s: {'met' if met else 'NOT met'} (p99 {d.p(99):.1f} ms)"
        )
    return 0


if __name__ == "__main__":
    args = sys.argv[1:]
    sys.exit(asyncio.run(main(float(args[0]) if args else 5.0, [int(a) for a in args[1:]] or [100, 1000])))
