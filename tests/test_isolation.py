"""Each promise of the grader's sandbox, kept: a small program run in the real bubblewrap sandbox tries to break it.

The sandbox command is ``streamcourse.isolation.sandbox(...)``; the runner
starts behind exactly that prefix. Every test here runs a probe behind it, in
a private network namespace as the checker does, and reads what the probe saw.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest

from streamcourse import checkkit, isolation

pytestmark = pytest.mark.skipif(isolation.problem() is not None, reason=f"no sandbox here: {isolation.problem()}")

REPO = Path(__file__).resolve().parent.parent
LIMITS = isolation.SandboxLimits(memory_mb=512, processes=32, tmp_mb=8, shm_mb=4)


def probe(code: str, tmp_path: Path, *, shared: Path | None = None, timeout: float = 60) -> dict:
    """Run ``code`` (which fills a dict ``seen``) in the sandbox; what it saw, as JSON on stdout."""
    program = "import json, os, sys\nseen = {}\n" + textwrap.dedent(code) + "\nprint(json.dumps(seen))"
    command = isolation.sandbox(None, shared, LIMITS, job=3) + [sys.executable, "-I", "-c", program]
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_it_sees_no_process_of_the_machine(tmp_path: Path) -> None:
    seen = probe("seen['pids'] = sorted(int(p) for p in os.listdir('/proc') if p.isdigit())", tmp_path)
    assert seen["pids"] and max(seen["pids"]) < 10, f"only its own few processes: {seen['pids']}"


def test_it_sees_none_of_the_repository_but_the_support_package(tmp_path: Path) -> None:
    seen = probe(f"seen['repo'] = sorted(os.listdir({str(REPO)!r}))", tmp_path)
    assert seen["repo"] == ["streamcourse"] or set(seen["repo"]) <= {"streamcourse", ".venv"}, seen["repo"]
    assert "solutions" not in seen["repo"] and "tests" not in seen["repo"]


def test_it_runs_as_a_user_without_capabilities(tmp_path: Path) -> None:
    seen = probe(
        """
        seen['uid'] = os.getuid()
        seen['caps'] = [l.split()[1] for l in open('/proc/self/status') if l.startswith(('CapEff', 'CapPrm', 'CapBnd'))]
        try:
            os.setuid(0)
            seen['setuid'] = 'worked'
        except OSError as exc:
            seen['setuid'] = exc.strerror
    """,
        tmp_path,
    )
    assert seen["uid"] != 0 and seen["setuid"] != "worked"
    assert all(int(cap, 16) == 0 for cap in seen["caps"][:2]), seen["caps"]


def test_the_root_is_read_only(tmp_path: Path) -> None:
    seen = probe(
        """
        seen['errors'] = []
        for path in ('/usr/evil', sys.prefix + '/evil', os.path.dirname(os.__file__) + '/evil'):
            try:
                open(path, 'w')
                seen['errors'].append('written')
            except OSError as exc:
                seen['errors'].append(exc.strerror)
    """,
        tmp_path,
    )
    assert "written" not in seen["errors"], seen


def test_its_tmp_and_shm_are_private_and_small(tmp_path: Path) -> None:
    marker = Path("/dev/shm") / f"streamcourse-probe-{os.getpid()}"
    seen = probe(
        f"""
        seen['ours'] = os.path.exists({str(marker)!r})
        seen['filled'] = {{}}
        for folder in ('/tmp', '/dev/shm'):
            written = 0
            try:
                with open(folder + '/fill', 'wb') as f:
                    while written < 64 << 20:
                        f.write(b'x' * (1 << 20)); f.flush(); written += 1 << 20
            except OSError:
                pass
            seen['filled'][folder] = written
    """,
        tmp_path,
    )
    assert not seen["ours"]
    assert seen["filled"]["/tmp"] > 0 and seen["filled"]["/dev/shm"] > 0, (
        f"the sandbox's user cannot write its own /tmp: {seen}"
    )
    assert seen["filled"]["/tmp"] <= LIMITS.tmp_mb << 20 and seen["filled"]["/dev/shm"] <= LIMITS.shm_mb << 20, seen


def test_its_environment_is_cleared(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-must-not-cross")
    seen = probe("seen['env'] = dict(os.environ)", tmp_path)
    assert "OPENAI_API_KEY" not in seen["env"] and seen["env"]["HOME"] == "/tmp"


def test_a_fork_bomb_stops_at_the_process_limit(tmp_path: Path) -> None:
    seen = probe(
        """
        import threading, time
        started = 0
        try:
            for _ in range(1000):
                threading.Thread(target=time.sleep, args=(5,), daemon=True).start()
                started += 1
        except RuntimeError:
            pass
        seen['started'] = started
    """,
        tmp_path,
    )
    assert seen["started"] < LIMITS.processes, seen


def test_a_memory_bomb_gets_a_memory_error(tmp_path: Path) -> None:
    seen = probe(
        """
        try:
            block = bytearray(2 << 30)
            seen['got'] = 'memory'
        except MemoryError:
            seen['got'] = 'MemoryError'
    """,
        tmp_path,
    )
    assert seen["got"] == "MemoryError"


def test_it_reaches_no_network_outside_its_own_loopback(tmp_path: Path) -> None:
    """The checker's private network: a server on the machine's loopback cannot be reached from inside."""
    outside = socket.create_server(("127.0.0.1", 0))
    port = outside.getsockname()[1]
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # a checker: its own network, then the sandbox inside it
        os.close(read_fd)
        try:
            isolation.private_network()
            code = f"import socket\ntry:\n    socket.create_connection(('127.0.0.1', {port}), timeout=2)\n    print('reached')\nexcept OSError as e:\n    print('refused')"
            done = subprocess.run(
                isolation.sandbox(None, None, LIMITS, 3) + [sys.executable, "-I", "-c", code],
                capture_output=True,
                text=True,
                timeout=60,
            )
            os.write(write_fd, done.stdout.encode())
        finally:
            os._exit(0)
    os.close(write_fd)
    os.waitpid(pid, 0)
    answer = os.read(read_fd, 100).decode().strip()
    outside.close()
    assert answer == "refused"


def test_the_sandbox_ends_with_its_parent(tmp_path: Path) -> None:
    parent = subprocess.Popen(isolation.sandbox(None, None, LIMITS, 3) + ["/bin/sleep", "600"])
    assert checkkit.wait_until(
        lambda: any("sleep" in " ".join(c.cmdline()) for c in psutil.Process(parent.pid).children(recursive=True)), 20
    )
    sleeper = next(c for c in psutil.Process(parent.pid).children(recursive=True) if "sleep" in " ".join(c.cmdline()))
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    assert checkkit.wait_until(lambda: not sleeper.is_running() or sleeper.status() == psutil.STATUS_ZOMBIE, 10)


def test_files_a_check_hands_over_are_readable_and_not_writable(tmp_path: Path) -> None:
    shared = tmp_path / "share"
    shared.mkdir()
    (shared / "data.bin").write_bytes(b"abc")
    seen = probe(
        f"""
        seen['data'] = open({str(shared / "data.bin")!r}, 'rb').read().decode()
        try:
            open({str(shared / "evil")!r}, 'w')
            seen['write'] = 'written'
        except OSError as exc:
            seen['write'] = exc.strerror
    """,
        tmp_path,
        shared=shared,
    )
    assert seen["data"] == "abc" and seen["write"] != "written"
    assert not (shared / "evil").exists()


def test_the_check_for_a_usable_sandbox_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    isolation.problem.cache_clear()
    try:
        why = isolation.problem()
    finally:
        isolation.problem.cache_clear()
    assert why and "apt-get install bubblewrap" in why and "--no-isolation" in why


def test_the_runner_starts_in_well_under_a_second(tmp_path: Path) -> None:
    """Isolation costs little per submission (bench/grade_class.py prints the figure side by side)."""
    started = time.perf_counter()
    probe("seen['ok'] = True", tmp_path)
    assert time.perf_counter() - started < 10  # generous: a loaded one-core machine


def test_memory_a_cell_filled_leaves_room_for_the_checks_that_follow(tmp_path: Path) -> None:
    """CI once lost a point this way: after a cell filled memory, a check could not import pydantic_core."""
    seen = probe(
        f"""
        sys.path.insert(0, {str(REPO)!r})
        from streamcourse.runner import address_space_reserve
        blocks = []
        with address_space_reserve():
            try:
                while True:
                    blocks.append(bytearray(16 * 1024 ** 2))
            except MemoryError:
                seen['cell'] = 'MemoryError'
        after = bytearray(96 * 1024 ** 2)  # what a check's imports may need (a quarter of the limit is kept back)
        seen['check'] = len(after)
    """,
        tmp_path,
    )
    assert seen == {"cell": "MemoryError", "check": 96 * 1024**2}
