# rejected by: test_your_test_fails_against_a_broken_endpoint[silent]
# Reads event by event, stops after six and checks the pacing — but with timeout=None, so a stream that
# goes quiet after its headers keeps the test waiting for ever.
import time

import httpx
from httpx_sse import connect_sse


def test_ticks(base_url):
    events = []
    with httpx.Client(timeout=None) as client:
        with connect_sse(client, "GET", f"{base_url}/ticks") as source:
            assert source.response.headers["content-type"].startswith("text/event-stream")
            for event in source.iter_sse():
                events.append((event.event, event.data, time.monotonic()))
                if len(events) == 6:
                    break
    assert [(n, d) for n, d, _ in events] == [("tick", str(n)) for n in range(1, 6)] + [("done", "done")]
    assert events[4][2] - events[0][2] >= 0.2
