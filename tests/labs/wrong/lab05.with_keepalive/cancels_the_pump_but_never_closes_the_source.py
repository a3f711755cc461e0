# rejected by: test_closing_the_wrapper_while_the_source_has_items_ready_closes_the_source
# Lesson 05's first "right" version: a pump task feeds a queue of one, and the
# wrapper's `finally` only cancels the pump. When the source has items ready the
# pump is blocked in queue.put with the source standing at its `yield`; cancelling
# the pump there leaves the source suspended — its cleanup never runs.
import asyncio


async def with_keepalive(source, interval, ping=": ping\n\n"):
    queue = asyncio.Queue(maxsize=1)
    end = object()

    async def pump():
        async for item in source:
            await queue.put(item)
        await queue.put(end)

    pumping = asyncio.create_task(pump())
    try:
        while True:
            try:
                item = await asyncio.wait_for(queue.get(), interval)
            except TimeoutError:
                if pumping.done():
                    pumping.result()
                yield ping
                continue
            if item is end:
                return
            yield item
    finally:
        pumping.cancel()
        await asyncio.gather(pumping, return_exceptions=True)
