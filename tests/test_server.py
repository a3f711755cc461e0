"""`streamcourse.server`: real uvicorn in a thread, reached through real sockets.

Each test pins one behaviour a learner relies on when a notebook cell runs
``serve(app)``: it starts and stops cleanly (even with an endless stream open),
re-running the cell replaces the old server, the Binder link works through a
real jupyter-server-proxy, and the server answers from inside a real kernel.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import httpx
import nbformat
import psutil
import pytest
from fastapi import FastAPI
from fastapi.responses import StreamingResponse
from nbclient import NotebookClient

from streamcourse.server import serve, stop_all

PREFIX = "/user/learner/"
TOKEN = "streamcourse-test-token"


@pytest.fixture(autouse=True)
def _no_server_left_running() -> Iterator[None]:
    yield
    stop_all()


@pytest.fixture
def no_binder(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("JUPYTERHUB_SERVICE_PREFIX", raising=False)


def hello_app() -> FastAPI:
    app = FastAPI(title="hello")

    @app.get("/")
    async def root() -> dict[str, str]:
        return {"hello": "world"}

    @app.get("/sync")
    def sync_root() -> dict[str, str]:  # runs in an anyio worker thread
        return {"hello": "thread"}

    return app


def accepts_connections(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def listening_addresses() -> set[tuple[str, int]]:
    return {
        (c.laddr.ip, c.laddr.port)
        for c in psutil.Process().net_connections(kind="inet")
        if c.status == psutil.CONN_LISTEN
    }


def threads_after_grace(before: set[threading.Thread], grace: float = 2.0) -> set[threading.Thread]:
    """Threads not in ``before``, once anyio's idle workers (which exit with their loop) are gone."""
    deadline = time.monotonic() + grace
    while True:
        extra = {t for t in threading.enumerate() if t not in before and t.is_alive()}
        if not extra or time.monotonic() > deadline:
            return extra
        time.sleep(0.02)


# --- lifecycle --------------------------------------------------------------


def test_fifty_start_stop_cycles_leave_no_thread_and_no_listening_socket(no_binder: None) -> None:
    app = hello_app()
    threads_before = set(threading.enumerate())
    listening_before = listening_addresses()

    with httpx.Client() as client:
        for i in range(50):
            server = serve(app, name=f"cycle-{i}")
            assert client.get(server.url + "/").json() == {"hello": "world"}
            assert client.get(server.url + "/sync").json() == {"hello": "thread"}
            server.stop()

    assert threads_after_grace(threads_before) == set()
    assert listening_addresses() == listening_before


async def test_stop_returns_promptly_with_an_endless_stream_open_and_runs_its_finally(no_binder: None) -> None:
    app = FastAPI()
    cleaned_up = threading.Event()

    @app.get("/forever")
    async def forever() -> StreamingResponse:
        async def ticks():
            try:
                while True:
                    yield b"tick\n"
                    await asyncio.sleep(0.05)
            finally:
                cleaned_up.set()

        return StreamingResponse(ticks(), media_type="text/plain")

    server = serve(app, name="endless")
    async with httpx.AsyncClient(timeout=10) as client:
        async with client.stream("GET", server.url + "/forever") as response:
            chunks = response.aiter_raw()
            assert (await anext(chunks)).startswith(b"tick")

            started = time.monotonic()
            await asyncio.to_thread(server.stop)
            elapsed = time.monotonic() - started

            with pytest.raises(httpx.RemoteProtocolError):  # the server cut the stream
                async for _ in chunks:
                    pass

    assert elapsed < 3, f"stop() took {elapsed:.2f} s with a stream open"
    assert not server.running
    assert cleaned_up.is_set(), "the generator's finally did not run"


def test_a_small_answer_does_not_wait_for_a_delayed_ack(no_binder: None) -> None:
    """Regression: a listening socket made with proto 0 kept Nagle on, and every answer took ~40 ms."""
    server = serve(hello_app(), name="nagle")
    with httpx.Client() as client:
        client.get(server.url + "/")  # connect first: only the requests on an open connection are timed
        times = []
        for _ in range(15):
            started = time.perf_counter()
            client.get(server.url + "/")
            times.append(time.perf_counter() - started)

    median = sorted(times)[len(times) // 2]
    assert median < 0.025, f"a keep-alive GET took {median * 1000:.0f} ms (Nagle + delayed ACK is 40 ms or more)"


def test_serving_the_same_name_again_replaces_the_first_server(no_binder: None) -> None:
    app = hello_app()
    first = serve(app, name="rerun")
    second = serve(app, name="rerun")  # re-running the cell: no "address already in use"

    assert second.port != first.port
    assert not first.running
    assert not accepts_connections(first.port)
    assert httpx.get(second.url + "/").json() == {"hello": "world"}


def test_the_context_manager_stops_the_server(no_binder: None) -> None:
    with serve(hello_app(), name="with") as server:
        assert httpx.get(server.url + "/").json() == {"hello": "world"}

    assert not server.running
    assert not accepts_connections(server.port)


def test_link_is_loopback_without_jupyterhub_and_the_html_repr_shows_it(no_binder: None) -> None:
    server = serve(hello_app(), name="local")

    assert server.link == f"http://127.0.0.1:{server.port}/"
    assert f'href="{server.link}"' in server._repr_html_()


# --- through a real jupyter-server-proxy (what Binder does) -----------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def jupyter(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real ``jupyter server`` with jupyter-server-proxy, based at a JupyterHub-style prefix.

    A JupyterHub single-user server takes JUPYTERHUB_SERVICE_PREFIX as its base_url;
    this one is given the same prefix directly. Yields its root URL (with the prefix).
    """
    home = tmp_path_factory.mktemp("jupyter")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("JUPYTERHUB_")}
    env.update(
        JUPYTER_CONFIG_DIR=str(home / "config"),  # ignore the user's own config
        JUPYTER_RUNTIME_DIR=str(home / "runtime"),
        JUPYTER_DATA_DIR=str(home / "data"),
    )
    log = (home / "server.log").open("wb")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "jupyter_server",
            "--no-browser",
            f"--ServerApp.token={TOKEN}",
            f"--ServerApp.base_url={PREFIX}",
            "--ServerApp.ip=127.0.0.1",
            f"--port={port}",
            "--ServerApp.port_retries=0",
            "--allow-root",  # harmless otherwise; CI containers often run as root
            f"--ServerApp.root_dir={home}",
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    root = f"http://127.0.0.1:{port}{PREFIX}"
    try:
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None:
                pytest.fail(f"jupyter server exited:\n{(home / 'server.log').read_text()}")
            try:
                status = httpx.get(root + "api/status", headers=auth(), timeout=1)
                if status.status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"jupyter server not ready in 30 s:\n{(home / 'server.log').read_text()}")
            time.sleep(0.1)
        yield root
    finally:
        process.kill()
        process.wait(10)
        log.close()


def auth() -> dict[str, str]:
    return {"Authorization": f"token {TOKEN}"}


@pytest.fixture
def binder(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JUPYTERHUB_SERVICE_PREFIX", PREFIX)


def test_on_binder_the_docs_page_and_its_openapi_json_work_through_the_proxy(jupyter: str, binder: None) -> None:
    server = serve(hello_app(), name="binder")
    proxy_path = f"{PREFIX}proxy/{server.port}/"
    origin = jupyter.removesuffix(PREFIX)

    assert server.link == proxy_path

    docs = httpx.get(origin + proxy_path + "docs", headers=auth())
    assert docs.status_code == 200
    assert f"'{proxy_path}openapi.json'" in docs.text

    openapi = httpx.get(origin + proxy_path + "openapi.json", headers=auth())
    assert openapi.status_code == 200
    assert openapi.json()["info"]["title"] == "hello"
    assert "/" in openapi.json()["paths"]


def paced_app(finished: list[float]) -> FastAPI:
    """Five chunks, 0.2 s apart; records when the generator finished."""
    app = FastAPI()

    @app.get("/paced")
    async def paced() -> StreamingResponse:
        async def chunks():
            for i in range(5):
                await asyncio.sleep(0.2)
                yield f"data: {i}\n\n".encode()
            finished.append(time.monotonic())

        return StreamingResponse(chunks(), media_type="text/event-stream")

    return app


def arrival_times(url: str, accept: str) -> list[float]:
    """Monotonic arrival time of each body chunk."""
    times = []
    with httpx.stream("GET", url, headers={**auth(), "Accept": accept}, timeout=10) as response:
        assert response.status_code == 200
        for chunk in response.iter_raw():
            if chunk:
                times.append(time.monotonic())
    return times


def test_through_the_proxy_a_response_streams_only_when_accept_is_exactly_text_event_stream(
    jupyter: str, binder: None
) -> None:
    """COURSE.md known error 16: jupyter-server-proxy buffers unless Accept == "text/event-stream"."""
    finished: list[float] = []
    server = serve(paced_app(finished), name="paced")
    url = jupyter.removesuffix(PREFIX) + server.link + "paced"

    streamed = arrival_times(url, "text/event-stream")
    assert streamed[0] < finished[-1] - 0.5, "first byte should arrive long before the generator ends"
    assert len(streamed) >= 4 and streamed[-1] - streamed[0] > 0.5, "chunks should arrive spread out"

    for accept in ["*/*", "text/event-stream; charset=utf-8"]:  # fetch()'s default; not "exactly"
        buffered = arrival_times(url, accept)
        assert buffered[0] >= finished[-1], f"Accept: {accept} should be buffered whole"


# --- inside a real Jupyter kernel -------------------------------------------


def test_a_server_started_in_a_real_kernel_answers_sync_and_top_level_await_clients(
    monkeypatch: pytest.MonkeyPatch, no_binder: None
) -> None:
    # In a virtualenv jupyter_core already prefers the env's kernelspec (python3, whose
    # "python" argv jupyter_client swaps for sys.executable); make that explicit.
    monkeypatch.setenv("JUPYTER_PREFER_ENV_PATH", "1")
    cells = [
        "import sys\nprint(sys.prefix)",
        "from fastapi import FastAPI\n"
        "from streamcourse.server import serve\n"
        "app = FastAPI()\n"
        "@app.get('/')\n"
        "async def root():\n"
        "    return {'hello': 'kernel'}\n"
        "srv = serve(app)",
        "import httpx; print(httpx.get(srv.url + '/').json())",
        "async with httpx.AsyncClient() as client:\n"
        "    response = await client.get(srv.url + '/')\n"
        "print(response.json(), 'nest_asyncio' in sys.modules)",
        "srv.stop()\nprint(srv.running)",
    ]
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])

    NotebookClient(notebook, kernel_name="python3", timeout=30).execute()

    printed = ["".join(o.get("text", "") for o in cell.outputs).strip() for cell in notebook.cells]
    assert printed[0] == sys.prefix, "the kernel must run on this virtualenv's Python"
    assert printed[2] == "{'hello': 'kernel'}"
    assert printed[3] == "{'hello': 'kernel'} False"
    assert printed[4] == "False"
