# rejected by: test_your_test_fails_against_a_broken_endpoint[endless], test_your_test_fails_against_a_broken_endpoint[buffered]
# The test a request library makes easy: httpx.get(...).text, then parse. Against a stream that never ends
# it waits for ever (data keeps coming, so no read timeout fires); against a buffered one it passes.
import httpx


def test_ticks(base_url):
    response = httpx.get(f"{base_url}/ticks", timeout=5)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    blocks = [b for b in response.text.split("\n\n") if b.strip()]
    events = [dict(line.split(": ", 1) for line in b.splitlines()) for b in blocks]
    assert [(e["event"], e["data"]) for e in events] == [("tick", str(n)) for n in range(1, 6)] + [("done", "done")]
