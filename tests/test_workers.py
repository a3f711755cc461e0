"""`streamcourse.workers`: one app served from several real forked processes.

Each test pins a promise a lesson or a check relies on: every worker is a
process of its own with its own copy of module state; ``.urls[i]`` reaches
worker i; stopping leaves no process even with streams open; a parent that
dies (or a kernel that is interrupted) does what a learner would expect; and
forking does not keep the parent's connections open behind its back.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import asynccontextmanager

import httpx
import nbformat
import psutil
import pytest
from fastapi import FastAPI
from fastapi.responses import StreamingResponse
from nbclient import NotebookClient

from streamcourse.memory import port_memory, port_memory_growth
from streamcourse.server import running, serve, stop_all
from streamcourse.workers import serve_workers


@pytest.fixture(autouse=True)
def _nothing_left_running() -> Iterator[None]:
    before = set(psutil.Process().children())  # other tests' long-lived helpers are not this test's
    yield
    stop_all()
    assert set(psutil.Process().children()) <= before, "a worker process outlived its test"


def pid_app() -> FastAPI:
    app = FastAPI()
    hits = Counter()  # module state: every worker has its own copy

    @app.get("/")
    async def root() -> dict[str, int]:
        hits["root"] += 1
        return {"pid": os.getpid(), "hits": hits["root"]}

    @app.get("/endless")
    async def endless() -> StreamingResponse:
        async def ticks():
            while True:
                yield b"tick\n"
                await asyncio.sleep(0.02)

        return StreamingResponse(ticks(), media_type="text/plain")

    return app


def gone(pids: list[int], within: float) -> bool:
    deadline = time.monotonic() + within
    while any(alive(pid) for pid in pids):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_each_worker_is_a_process_of_its_own_reached_by_its_own_url() -> None:
    workers = serve_workers(pid_app(), 3, name="own")

    answered = [httpx.get(url, timeout=5).json()["pid"] for url in workers.urls]

    assert answered == workers.pids
    assert len(set(answered)) == 3 and os.getpid() not in answered


def test_the_process_serving_a_port_is_found_by_its_socket_not_by_a_reported_pid() -> None:
    workers = serve_workers(pid_app(), 2, name="found")

    found = [set(port_memory(port)) for port in workers.ports]

    assert found == [{workers.pids[0]}, {workers.pids[1]}], f"who holds each worker's port: {found}"


def test_a_process_that_let_go_of_the_port_is_still_measured() -> None:
    code = (
        "import socket, sys, time\n"
        "s = socket.create_server(('127.0.0.1', 0)); print(s.getsockname()[1], flush=True)\n"
        "sys.stdin.readline(); s.close(); blob = bytearray(32 * 2**20); print('closed', flush=True); time.sleep(60)\n"
    )
    child = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None and child.stdin is not None
        port = int(child.stdout.readline())
        before = port_memory(port)
        child.stdin.write("close\n")
        child.stdin.flush()
        assert child.stdout.readline().strip() == "closed"

        assert set(before) == {child.pid} and port_memory(port) == {}
        assert port_memory_growth(before, port_memory(port, also=before)) > 30 * 2**20
    finally:
        child.kill()
        child.wait()


def test_memory_growth_counts_a_new_holder_whole_and_lets_no_holder_offset_another() -> None:
    before = {10: 5_000_000, 11: 1_000}

    grown = port_memory_growth(before, {11: 3_000, 12: 400})

    assert grown == 2_000 + 400, "pid 10 left with its 5 MB; it must not hide what 11 and the new 12 hold"


def test_the_shared_url_is_answered_by_more_than_one_worker() -> None:
    workers = serve_workers(pid_app(), 4, name="shared")

    pids = {httpx.get(workers.url, timeout=5).json()["pid"] for _ in range(200)}

    assert pids <= set(workers.pids) and len(pids) >= 2, f"200 connections all went to {pids}"


def test_a_worker_answers_without_waiting_for_a_delayed_ack() -> None:
    workers = serve_workers(pid_app(), 1, name="nagle")
    with httpx.Client(timeout=5) as client:
        client.get(workers.url)
        times = []
        for _ in range(15):
            started = time.perf_counter()
            client.get(workers.url)
            times.append(time.perf_counter() - started)

    assert sorted(times)[7] < 0.025, "a keep-alive GET took 40 ms or more: the listening socket needs proto IPPROTO_TCP"


def test_module_state_is_per_worker_as_with_uvicorn_workers() -> None:
    workers = serve_workers(pid_app(), 2, name="state")

    with httpx.Client(timeout=5) as client:
        for _ in range(3):
            client.get(workers.urls[0])
        second = client.get(workers.urls[1]).json()

    assert second["hits"] == 1, "worker 1 must not see worker 0's counter"


def test_a_lifespan_runs_in_every_worker() -> None:
    @asynccontextmanager
    async def lifespan(app: FastAPI):
        app.state.started_in = os.getpid()
        yield

    app = FastAPI(lifespan=lifespan)

    @app.get("/")
    async def root() -> dict[str, int]:
        return {"started_in": app.state.started_in, "pid": os.getpid()}

    workers = serve_workers(app, 2, name="lifespan")

    for url in workers.urls:
        answer = httpx.get(url, timeout=5).json()
        assert answer["started_in"] == answer["pid"]


async def test_stop_with_streams_open_on_every_worker_leaves_no_process_within_a_second() -> None:
    workers = serve_workers(pid_app(), 3, name="endless")
    async with httpx.AsyncClient(timeout=10) as client:
        streams = [
            await client.send(client.build_request("GET", url + "/endless"), stream=True) for url in workers.urls
        ]
        for stream in streams:
            assert (await anext(stream.aiter_raw())).startswith(b"tick")

        started = time.monotonic()
        await asyncio.to_thread(workers.stop)
        elapsed = time.monotonic() - started
        for stream in streams:
            await stream.aclose()

    assert elapsed < 1.0, f"stop() took {elapsed:.2f} s with streams open"
    assert workers.alive() == [False, False, False]
    assert gone(workers.pids, within=0)


def request_quietly(url: str) -> None:
    try:
        httpx.get(url, timeout=30)
    except httpx.HTTPError:  # the worker is killed under it
        pass


def test_a_worker_that_ignores_stop_is_killed_after_the_deadline() -> None:
    app = FastAPI()

    @app.get("/block")
    def block() -> None:  # a thread that never returns: no graceful shutdown can end it
        time.sleep(60)

    workers = serve_workers(app, 1, name="stuck")
    threading.Thread(target=request_quietly, args=(workers.url + "/block",), daemon=True).start()
    time.sleep(0.3)  # the request is in the handler (no event to wait for: it blocks by design)

    started = time.monotonic()
    workers.stop(timeout=1.0)

    assert time.monotonic() - started < 3
    assert gone(workers.pids, within=0)


def test_serving_the_same_name_again_replaces_the_workers() -> None:
    first = serve_workers(pid_app(), 2, name="rerun")
    second = serve_workers(pid_app(), 2, name="rerun")

    assert gone(first.pids, within=2)
    assert running()["rerun"] is second
    assert httpx.get(second.url, timeout=5).json()["pid"] in second.pids


def test_what_a_worker_prints_reaches_the_parents_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    """In Jupyter that is the notebook; under check() or the grader, their capture."""
    app = FastAPI()

    @app.get("/")
    async def root() -> None:
        print(f"hello from worker {os.getpid()}")

    workers = serve_workers(app, 1, name="prints")
    httpx.get(workers.url, timeout=5)
    deadline, seen = time.monotonic() + 5, ""
    while f"hello from worker {workers.pids[0]}" not in seen and time.monotonic() < deadline:
        time.sleep(0.02)
        seen += capsys.readouterr().err

    assert f"hello from worker {workers.pids[0]}" in seen


def test_a_lifespan_that_fails_is_reported_and_leaves_no_process() -> None:
    @asynccontextmanager
    async def lifespan(app: FastAPI):
        raise ConnectionError("no database here")
        yield

    with pytest.raises(RuntimeError, match="did not start"):
        serve_workers(FastAPI(lifespan=lifespan), 2, name="broken")


async def test_a_connection_the_parent_closes_is_closed_although_workers_were_forked_while_it_was_open() -> None:
    """A child must not keep the parent's sockets: the in-kernel server would never see the client leave."""
    app = FastAPI()
    cleaned_up = threading.Event()

    @app.get("/forever")
    async def forever() -> StreamingResponse:
        async def ticks():
            try:
                while True:
                    yield b"tick\n"
                    await asyncio.sleep(0.02)
            finally:
                cleaned_up.set()

        return StreamingResponse(ticks())

    in_kernel = serve(app, name="in-kernel")
    async with httpx.AsyncClient(timeout=10) as client:
        async with client.stream("GET", in_kernel.url + "/forever") as response:
            await anext(response.aiter_raw())
            serve_workers(pid_app(), 2, name="forked-meanwhile")
    # the client has closed its connection: the in-kernel server must notice
    assert await asyncio.to_thread(cleaned_up.wait, 3), "the stream's finally never ran: a worker kept the socket open"


PARENT = textwrap.dedent(
    """
    import signal, sys, time
    from fastapi import FastAPI
    from streamcourse.workers import serve_workers
    interrupted = []
    signal.signal(signal.SIGINT, lambda *a: interrupted.append(1))
    workers = serve_workers(FastAPI(), 2)
    print(*workers.pids, flush=True)
    while True:
        time.sleep(0.05)
        if interrupted:
            print("interrupted", *workers.alive(), flush=True)
            interrupted.clear()
    """
)


def start_parent() -> tuple[subprocess.Popen, list[int]]:
    parent = subprocess.Popen([sys.executable, "-c", PARENT], stdout=subprocess.PIPE, text=True, start_new_session=True)
    pids = [int(p) for p in parent.stdout.readline().split()]
    assert len(pids) == 2, "the parent script did not start its workers"
    return parent, pids


def test_workers_end_when_their_parent_is_killed() -> None:
    parent, pids = start_parent()

    parent.kill()
    parent.wait(5)

    assert gone(pids, within=3), "workers outlived a killed parent"


def test_interrupting_the_parents_process_group_spares_the_workers() -> None:
    """What "interrupt kernel" does in Jupyter: SIGINT to the kernel's process group."""
    parent, pids = start_parent()
    try:
        os.killpg(parent.pid, signal.SIGINT)
        line = parent.stdout.readline().split()
        assert line == ["interrupted", "True", "True"], f"after SIGINT to the group: {line}"
    finally:
        parent.kill()
        parent.wait(5)
    assert gone(pids, within=3)


def test_workers_started_in_a_real_kernel_from_a_cell_and_from_a_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    """check() runs its checks in a worker thread of the kernel: forking from there must work too."""
    monkeypatch.setenv("JUPYTER_PREFER_ENV_PATH", "1")
    cells = [
        "import os, threading, httpx\n"
        "from fastapi import FastAPI\n"
        "from streamcourse.workers import serve_workers\n"
        "app = FastAPI()\n"
        "@app.get('/')\n"
        "async def root():\n"
        "    return os.getpid()\n"
        "w = serve_workers(app, 2)\n"
        "print([httpx.get(u).json() == p for u, p in zip(w.urls, w.pids)])",
        "box = {}\n"
        "def in_thread():\n"
        "    t = serve_workers(app, 2, name='from-thread')\n"
        "    box['ok'] = [httpx.get(u).json() == p for u, p in zip(t.urls, t.pids)]\n"
        "    t.stop()\n"
        "    box['alive'] = t.alive()\n"
        "th = threading.Thread(target=in_thread); th.start(); th.join(30)\n"
        "print(box)",
        "w.stop()\nprint(w.alive())",
    ]
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])

    NotebookClient(notebook, kernel_name="python3", timeout=60).execute()

    printed = ["".join(o.get("text", "") for o in cell.outputs).strip() for cell in notebook.cells]
    assert printed == ["[True, True]", "{'ok': [True, True], 'alive': [False, False]}", "[False, False]"]
