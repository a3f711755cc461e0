# rejected by: test_closing_the_wrapper_while_the_source_has_items_ready_closes_the_source
# The lab's solution without its last step, `await source.aclose()`: cancelling the
# pending read closes a source that is waiting inside it, but when the wrapper is
# closed at a `yield item` there is no pending read — the source stands at its own
# `yield` with the next item ready, and nothing ever closes it.
import asyncio


async def with_keepalive(source, interval, ping=": ping\n\n"):
    done = object()
    pending = None
    try:
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
    finally:
        if pending is not None:
            pending.cancel()
            await asyncio.gather(pending, return_exceptions=True)
