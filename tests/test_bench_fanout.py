"""bench/fanout.py runs: every client gets every event from both designs, and a frozen client's cost is bounded.

Small sizes and generous bounds: this pins the bench's behaviour, not the machine's speed.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import httpx
import pytest
import redis.asyncio as aioredis

from streamcourse.redis_server import RedisServer, start_redis

BENCH = Path(__file__).resolve().parent.parent / "bench" / "fanout.py"


@pytest.fixture(scope="module")
def bench() -> Iterator[ModuleType]:
    # imported by name from its folder, not from a file spec: the bench's listeners run in a
    # spawned process, which must be able to import the module their function lives in
    sys.path.insert(0, str(BENCH.parent))
    try:
        yield importlib.import_module(BENCH.stem)
    finally:
        sys.path.remove(str(BENCH.parent))


@pytest.fixture(scope="module")
def redis_server() -> Iterator[RedisServer]:
    server = start_redis(name="bench-test-redis")
    yield server
    server.stop()


async def test_every_client_of_four_redis_workers_gets_every_event(
    bench: ModuleType, redis_server: RedisServer
) -> None:
    r = aioredis.Redis.from_url(redis_server.url, decode_responses=True)
    group = bench.serve_workers(bench.redis_app(redis_server.url, "tiny"), 4, name="bench-test")
    try:
        delivery = (
            await bench.deliver(
                [u + "/events" for u in group.urls], 40, 30, lambda text: r.xadd("tiny", {"data": text})
            )
        ).delivery
    finally:
        group.stop()
        await r.aclose()
    assert delivery.complete == 40, delivery
    assert delivery.p(99) < 2000, delivery


async def test_every_client_of_the_in_memory_process_gets_every_event(bench: ModuleType) -> None:
    single = bench.serve_workers(bench.memory_app(), 1, name="bench-test")
    try:
        async with httpx.AsyncClient(base_url=single.url, timeout=30) as http:
            delivery = (
                await bench.deliver([single.url + "/events"], 40, 30, lambda text: http.post("/publish", content=text))
            ).delivery
    finally:
        single.stop()
    assert delivery.complete == 40, delivery


async def test_a_frozen_client_costs_a_bounded_buffer_and_an_unbounded_one_grows(
    bench: ModuleType, redis_server: RedisServer
) -> None:
    r = aioredis.Redis.from_url(redis_server.url, decode_responses=True)

    async def add(texts: list[str]) -> None:
        pipe = r.pipeline(transaction=False)
        for text in texts:
            pipe.xadd("frozen", {"data": text})
        await pipe.execute()

    grown = {}
    for limit in (bench.FROZEN_BUFFER, 0):
        await r.delete("frozen")
        group = bench.serve_workers(bench.redis_app(redis_server.url, "frozen", limit), 2, name="bench-test")
        try:
            _, grown[limit] = await bench.frozen_cost(group, add)
        finally:
            group.stop()
    await r.aclose()
    assert grown[bench.FROZEN_BUFFER] < 8 * 2**20, grown
    assert grown[0] > grown[bench.FROZEN_BUFFER] + 8 * 2**20, grown
