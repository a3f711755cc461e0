# rejected by: test_your_test_fails_against_a_broken_endpoint[plain_text]
# Parses the lines itself and never looks at Content-Type: a text/plain answer, which an EventSource
# refuses, passes.
import time

import httpx


def test_ticks(base_url):
    events, name = [], None
    with httpx.Client(timeout=httpx.Timeout(5.0, read=2.0)) as client:
        with client.stream("GET", f"{base_url}/ticks") as response:
            assert response.status_code == 200
            for line in response.iter_lines():
                if line.startswith("event: "):
                    name = line[7:]
                elif line.startswith("data: "):
                    events.append((name, line[6:], time.monotonic()))
                    assert len(events) <= 6
    assert [(n, d) for n, d, _ in events] == [("tick", str(n)) for n in range(1, 6)] + [("done", "done")]
    assert events[4][2] - events[0][2] >= 0.2
