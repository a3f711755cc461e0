"""How long a notebook cell waits for ``serve(app)``: start to first response, and stop.

Run it from the repository root with the project's Python::

    python bench/server_start.py            # 50 runs
    python bench/server_start.py 200        # more runs

Each run serves the app under a fresh name, times ``serve()`` up to the first
response of ``GET /`` over a real socket, then times ``stop()``. The client is
created once, outside the timing, so the numbers are the server's (an
``httpx.get`` in a cell adds ~15 ms of its own for building an SSL context).
Target: start + first response median well under 100 ms.
"""

from __future__ import annotations

import statistics
import sys
import time

import httpx
from fastapi import FastAPI

from streamcourse.server import serve

TARGET_MS = 100.0


def make_app() -> FastAPI:
    app = FastAPI()

    @app.get("/")
    async def root() -> dict[str, str]:
        return {"hello": "world"}

    return app


def summary(label: str, seconds: list[float]) -> str:
    ms = sorted(s * 1000 for s in seconds)
    p90 = statistics.quantiles(ms, n=10)[-1]
    return f"{label:<28} median {statistics.median(ms):7.1f} ms   p90 {p90:7.1f} ms   max {ms[-1]:7.1f} ms"


def main(runs: int = 50) -> int:
    app = make_app()
    starts: list[float] = []
    stops: list[float] = []
    with httpx.Client() as client:
        for i in range(runs):
            began = time.perf_counter()
            server = serve(app, name=f"bench-{i}")
            response = client.get(server.url + "/")
            answered = time.perf_counter()
            assert response.status_code == 200, response
            server.stop()
            stopped = time.perf_counter()
            starts.append(answered - began)
            stops.append(stopped - answered)

    print(f"streamcourse.server over {runs} runs")
    print(summary("serve() -> first response", starts))
    print(summary("stop()", stops))
    verdict = "within" if statistics.median(starts) * 1000 < TARGET_MS else "OVER"
    print(f"start median {verdict} the {TARGET_MS:.0f} ms target")
    return 0


if __name__ == "__main__":
    sys.exit(main(int(sys.argv[1]) if len(sys.argv) > 1 else 50))
