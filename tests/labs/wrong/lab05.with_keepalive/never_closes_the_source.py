# rejected by: test_closing_the_wrapper_while_the_source_is_silent_closes_the_source, test_closing_the_wrapper_while_the_source_has_items_ready_closes_the_source
# Pings correctly and never cancels an item, but when it is closed it just walks away:
# the pending task and the source stay alive, and the source's cleanup never runs.
import asyncio


async def with_keepalive(source, interval, ping=": ping\n\n"):
    done = object()
    pending = None
    while True:
        if pending is None:
            pending = asyncio.ensure_future(anext(source, done))
        finished, _ = await asyncio.wait({pending}, timeout=interval)
        if not finished:
            yield ping
            continue
        item, pending = pending.result(), None
        if item is done:
            return
        yield item
