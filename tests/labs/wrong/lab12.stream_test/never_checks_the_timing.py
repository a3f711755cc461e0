# rejected by: test_your_test_fails_against_a_broken_endpoint[buffered]
# Bounded and careful about the events — but a response that arrives all at once has the same events,
# so a buffered "stream" passes.
import httpx
from httpx_sse import connect_sse


def test_ticks(base_url):
    events = []
    with httpx.Client(timeout=httpx.Timeout(5.0, read=2.0)) as client:
        with connect_sse(client, "GET", f"{base_url}/ticks") as source:
            assert source.response.headers["content-type"].startswith("text/event-stream")
            for event in source.iter_sse():
                events.append((event.event, event.data))
                assert len(events) <= 6
    assert events == [("tick", str(n)) for n in range(1, 6)] + [("done", "done")]
