# The source material's "simple version" (known error 5): after each item it waits
# wait_for(sleep(interval), timeout=interval) — the sleep and the timeout race, so the
# ping is sent at most once per item, if ever, and every item is delayed by `interval`.
import asyncio


async def with_keepalive(source, interval, ping=": ping\n\n"):
    try:
        async for item in source:
            yield item
            try:
                await asyncio.wait_for(asyncio.sleep(interval), timeout=interval)
            except TimeoutError:
                yield ping
    finally:
        await source.aclose()
