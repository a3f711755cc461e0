# rejected by: test_pings_fill_a_silence_once_per_interval, test_data_arrives_in_order_and_without_delay
# The source material's "simple version" (known error 5): after each item it waits
# wait_for(sleep(interval), timeout=interval). The timeout always wins (wait_for sets its
# timer before the sleep sets its own), so exactly one ping follows each item, the long
# silence before the next item gets none, and every item is delayed by `interval`.
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
