# rejected by: test_no_ping_comes_sooner_than_an_interval_after_the_last_piece, test_closing_the_wrapper_while_the_source_is_silent_closes_the_source
# The source material's queue version with its NameError fixed: a ticker task pings every
# `interval` whatever else is sent (pings interleave with busy data), and the data task
# is never cancelled, so closing the wrapper leaves the source running.
import asyncio


async def with_keepalive(source, interval, ping=": ping\n\n"):
    queue: asyncio.Queue = asyncio.Queue()

    async def send_pings():
        while True:
            await asyncio.sleep(interval)
            await queue.put(ping)

    async def send_data():
        async for item in source:
            await queue.put(item)
        await queue.put(None)

    ping_task = asyncio.create_task(send_pings())
    data_task = asyncio.create_task(send_data())
    while True:
        item = await queue.get()
        if item is None:
            ping_task.cancel()
            break
        yield item
