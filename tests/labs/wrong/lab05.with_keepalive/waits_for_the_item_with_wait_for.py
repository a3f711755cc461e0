# rejected by: test_a_slow_source_loses_nothing_and_is_never_cancelled
# wait_for(anext(source), interval): on a timeout it CANCELS the source at its await —
# the item being produced is lost and the async generator is finished for good.
import asyncio


async def with_keepalive(source, interval, ping=": ping\n\n"):
    try:
        while True:
            try:
                item = await asyncio.wait_for(anext(source), interval)
            except TimeoutError:
                yield ping
                continue
            except StopAsyncIteration:
                return
            yield item
    finally:
        await source.aclose()
