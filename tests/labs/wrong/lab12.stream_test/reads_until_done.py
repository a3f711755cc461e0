# rejected by: test_your_test_fails_against_a_broken_endpoint[endless]
# Reads until the done event, with a read timeout — but with no limit on how many events: a stream that
# never sends done, and never goes quiet, keeps the test reading for ever.
import time

import httpx
from httpx_sse import connect_sse


def test_ticks(base_url):
    events = []
    with httpx.Client(timeout=httpx.Timeout(5.0, read=2.0)) as client:
        with connect_sse(client, "GET", f"{base_url}/ticks") as source:
            assert source.response.headers["content-type"].startswith("text/event-stream")
            for event in source.iter_sse():
                events.append((event.event, event.data, time.monotonic()))
                if event.event == "done":
                    break
    assert [(n, d) for n, d, _ in events] == [("tick", str(n)) for n in range(1, 6)] + [("done", "done")]
    assert events[4][2] - events[0][2] >= 0.2
