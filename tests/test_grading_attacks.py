"""The grader against a learner who has read its source: every attack of issue 9, graded for real.

One class is graded once per module through ``python -m streamcourse grade``'s
own code path: a classmate with a correct notebook, a blank lab, and one blank
lab per attack (each attack is a cell the learner added). Each test states one
promise and checks it from outside: no points gained, no forged result, no
secret in any report or on the terminal, nothing written outside the reports,
no process left, every other learner graded correctly.
"""

from __future__ import annotations

import argparse
import json
import shutil
import socket
import sys
import tempfile
import threading
from pathlib import Path

import nbformat
import psutil
import pytest

from streamcourse import grading, isolation

sys.path.insert(0, str(Path(__file__).parent / "grading_fixtures"))
import hostile

pytestmark = pytest.mark.skipif(isolation.problem() is not None, reason=f"no sandbox here: {isolation.problem()}")

REPO = Path(__file__).resolve().parent.parent
SECRET = "sk-instructor-secret-3c1f"
VICTIM_MARK = "classmate-notebook-marker-7d2e"
HIDDEN_MARK = "SECRET_EXPECTED_VALUE_91b4"
SOLUTION_MARK = "chunk.append(row)"  # a line of the lab01 solution's batched
SURVIVOR = "987654"  # a sleeping process the attacker leaves behind: `sleep 987654`
LIMITS = grading.Limits(timeout=20, cell_timeout=3, check_timeout=8)

HIDDEN_CHECK = f'''
import pytest

@pytest.mark.exercise("lab01.batched")
def test_hidden_value(submission):
    assert list(submission.batched(iter(["a\\n"]), 1)) == ["{HIDDEN_MARK}"]
'''


def blank_with(source: str) -> nbformat.NotebookNode:
    return hostile.with_cell(source, after="lab01.batched", base=hostile.BLANK)


def attacks(paths: dict[str, Path], port: int) -> dict[str, nbformat.NotebookNode]:
    """Learner folder → notebook. Every attack starts from the blank lab: any point it earns is stolen."""
    targets = [
        paths["check_file"],
        paths["out"] / "grades.csv",
        REPO / "tests" / "labs" / "conftest.py",
        REPO / "tests" / "labs" / "__pycache__" / "test_lab01_generators.cpython-311-pytest-9.2.0.pyc",
        REPO / "solutions" / "planted.py",
        paths["victim"],
        paths["out"] / "feedback",
    ]
    probes = {
        "the instructor's key": f"any({SECRET!r} in read(p) for p in glob.glob('/proc/*/environ')) or {SECRET!r} in str(os.environ)",
        "solutions/": f"os.path.exists({str(REPO / 'solutions')!r})",
        "tests/": f"os.path.exists({str(REPO / 'tests')!r})",
        "hidden checks": f"os.path.exists({str(paths['hidden'])!r}) or any(m.startswith('test_') for m in sys.modules)",
        "a classmate's notebook": f"os.path.exists({str(paths['victim'])!r})",
        "the reports": f"os.path.exists({str(paths['out'])!r})",
        "the grader's processes": "any('streamcourse.engine' in read(p) for p in glob.glob('/proc/*/cmdline'))",
        "the machine's network": f"reach({port})",
        # the mark is written backwards here, so the probe's own text is not what it finds
        "a hidden expected value": f"any({HIDDEN_MARK[::-1]!r}[::-1] in repr(o) for o in gc.get_objects() if isinstance(o, (list, dict, tuple)))",
    }
    spy = "\n".join(
        [
            "import gc, glob, os, socket, sys",
            "def read(path):",
            "    try:",
            "        return open(path, errors='replace').read()",
            "    except OSError:",
            "        return ''",
            "def reach(port):",
            "    try:",
            "        socket.create_connection(('127.0.0.1', port), timeout=1).close()",
            "        return True",
            "    except OSError:",
            "        return False",
            "def batched(rows, max_bytes):",
            "    found = [name for name, probe in PROBES.items() if eval(probe)]",
            "    raise ValueError('LEAKED: ' + ', '.join(found) if found else 'NOTHING-FOUND')",
            f"PROBES = {probes!r}",
        ]
    )
    forge_frames = "\n".join(
        [
            "import json, os, struct",
            "def frame(obj):",
            "    data = json.dumps(obj).encode()",
            "    return struct.pack('!I', len(data)) + data",
            "lies = b''.join(frame({'r': n, 'v': True}) for n in range(1, 3000))",
            "lies += b''.join(frame({'ev': 'cell', 'd': {'~d': []}}) for _ in range(50))",
            "for fd in range(3, 256):",
            "    try:",
            "        os.write(fd, lies)",
            "    except OSError:",
            "        pass",
        ]
    )
    proc_fds = "\n".join(
        [
            "import glob, json",
            "done = json.dumps({'event': 'done', 'record': {'id': 0, 'path': 'x', 'learner': 'victim', 'checks': []}})",
            "result = json.dumps({'kind': 'result', 'checks': [{'nodeid': 'x', 'name': 'x', 'exercise': 'lab01.batched', 'hidden': False, 'status': 'passed'}]})",
            "for path in glob.glob('/proc/*/fd/*'):",
            "    try:",
            "        with open(path, 'w') as f:",
            "            f.write((done + '\\n' + result + '\\n') * 100)",
            "    except OSError:",
            "        pass",
        ]
    )
    swap_pytest = "\n".join(
        [
            "import builtins, sys",
            "try:",
            "    import _pytest.python, _pytest.reports",
            "    _pytest.python.Function.runtest.__code__ = (lambda self: None).__code__",
            "    _pytest.reports.BaseReport.passed = property(lambda self: True)",
            "except ImportError:",
            "    pass",
            "sys.modules['test_lab01_generators'] = type(sys)('test_lab01_generators')",
            "builtins.AssertionError = type('Never', (BaseException,), {})",
        ]
    )
    damage = "\n".join(
        [
            "import os",
            f"for target in {[str(t) for t in targets]!r}:",
            "    for act in (lambda: open(target, 'w').write('def test_nothing(): pass\\n'),",
            "                lambda: os.makedirs(os.path.dirname(target), exist_ok=True),",
            "                lambda: os.symlink('/etc/passwd', target),",
            "                lambda: os.link('/etc/passwd', target),",
            "                lambda: os.open(os.path.basename(target), os.O_WRONLY | os.O_CREAT, dir_fd=os.open(os.path.dirname(target), os.O_RDONLY))):",
            "        try:",
            "            act()",
            "        except (OSError, ValueError):",
            "            pass",
        ]
    )
    kill_and_stay = "\n".join(
        [
            "import os, signal, threading",
            "def survive():",
            "    if os.fork() == 0:",
            "        os.setsid()",
            "        if os.fork() == 0:",
            f"            os.execv('/bin/sleep', ['/bin/sleep', {SURVIVOR!r}])",
            "        os._exit(0)",
            "survive()",
            "threading.Thread(target=survive).start()",
            "for pid in [int(p) for p in os.listdir('/proc') if p.isdigit()]:",
            "    if pid != os.getpid():",
            "        for sig in (signal.SIGSTOP, signal.SIGTERM):",
            "            try:",
            "                os.kill(pid, sig)",
            "            except OSError:",
            "                pass",
        ]
    )
    fill = "\n".join(
        [
            "import os",
            "block = b'x' * (1 << 20)",
            "for folder in ('/tmp', '/dev/shm', '/', os.path.expanduser('~')):",
            "    try:",
            "        with open(os.path.join(folder, 'fill.bin'), 'wb') as f:",
            "            for _ in range(400):",
            "                f.write(block)",
            "    except OSError:",
            "        pass",
        ]
    )
    always_equal = "\n".join(
        [
            "class Anything(str):",
            "    def __eq__(self, other): return True",
            "    def __ne__(self, other): return False",
            "    __hash__ = str.__hash__",
            "class Chunky(bytes):",
            "    def __eq__(self, other): return True",
            "def read_chunks(path, size):",
            "    yield Chunky(b'')",
            "def batched(rows, max_bytes):",
            "    yield Anything('')",
        ]
    )
    fake_memory = "\n".join(
        [
            "import tracemalloc",
            "tracemalloc.get_traced_memory = lambda: (0, 0)",
            "tracemalloc.start = tracemalloc.stop = lambda *a: None",
            "_kept = []",
            "def batched(rows, max_bytes):",
            "    chunk, size = [], 0",
            "    for row in rows:",
            "        _kept.append(row * 4)",
            "        n = len(row.encode())",
            "        if chunk and size + n > max_bytes:",
            "            yield ''.join(chunk)",
            "            chunk, size = [], 0",
            "        chunk.append(row)",
            "        size += n",
            "    if chunk:",
            "        yield ''.join(chunk)",
        ]
    )
    flood_channel = "\n".join(
        [
            "import os, struct",
            "for fd in range(3, 64):",
            "    try:",
            "        os.write(fd, struct.pack('!I', 1 << 31) + b'{' * 65536)",
            "    except OSError:",
            "        pass",
        ]
    )
    notebooks = {
        "forges_channel_frames": blank_with(forge_frames),
        "writes_to_every_proc_fd": blank_with(proc_fds),
        "swaps_pytest_code": blank_with(swap_pytest),
        "spies": blank_with(spy),
        "plants_files": blank_with(damage),
        "stops_everyone_and_stays": blank_with(kill_and_stay),
        "fills_the_disk": blank_with(fill),
        "always_equal_objects": blank_with(always_equal),
        "patches_tracemalloc": hostile.with_cell(fake_memory, after="lab01.batched"),
        "floods_the_channel": blank_with(flood_channel),
    }
    return notebooks


@pytest.fixture(scope="module")
def listener() -> int:
    """A TCP port on the machine's own loopback: no learner code should ever reach it."""
    server = socket.create_server(("127.0.0.1", 0))
    threading.Thread(target=lambda: [server.accept()[0].close() for _ in iter(int, 1)], daemon=True).start()
    return server.getsockname()[1]


@pytest.fixture(scope="module")
def graded(tmp_path_factory: pytest.TempPathFactory, listener: int) -> dict:
    root = tmp_path_factory.mktemp("attack-class")
    out = tmp_path_factory.mktemp("attack-out") / "grades"
    hidden = tmp_path_factory.mktemp("attack-hidden")
    (hidden / "test_lab01_hidden.py").write_text(HIDDEN_CHECK)
    victim = hostile.with_cell(f"# {VICTIM_MARK}\nmarker = 1")
    hostile._write(victim, root / "victim")
    hostile.blank(root / "blank")
    paths = {"check_file": hostile.CHECK_FILE, "out": out, "hidden": hidden, "victim": root / "victim" / hostile.NAME}
    for name, nb in attacks(paths, listener).items():
        hostile._write(nb, root / name)
    broken = root / "non_string_source"
    broken.mkdir()
    raw = json.loads(hostile.BLANK.read_text())
    raw["cells"][2]["source"] = 12345
    (broken / hostile.NAME).write_text(json.dumps(raw))

    before = {p: p.read_bytes() for p in [hostile.CHECK_FILE, paths["victim"]]}
    repo_files = sorted(str(p) for p in (REPO / "tests").rglob("*") if "__pycache__" not in p.parts)
    shm_before = shutil.disk_usage("/dev/shm").used
    scratch = tmp_path_factory.mktemp("attack-scratch")
    mp = pytest.MonkeyPatch()
    mp.setenv("OPENAI_API_KEY", SECRET)
    mp.setattr(tempfile, "tempdir", str(scratch))
    try:
        args = argparse.Namespace(
            submissions=[str(root)],
            checks=[str(hidden)],
            jobs=2,
            timeout=LIMITS.timeout,
            out=str(out),
            no_isolation=False,
        )
        import contextlib
        import io

        terminal = io.StringIO()
        with contextlib.redirect_stdout(terminal), contextlib.redirect_stderr(terminal):
            status = grading.main(args)
    finally:
        mp.undo()
    data = json.loads((out / "grades.json").read_text())
    return {
        "status": status,
        "terminal": terminal.getvalue(),
        "out": out,
        "root": root,
        "scratch": scratch,
        "by_learner": {s["learner"]: s for s in data["submissions"]},
        "before": before,
        "repo_files": repo_files,
        "shm_before": shm_before,
    }


def points(graded: dict, learner: str) -> float:
    return graded["by_learner"][learner]["points"]


def test_grading_runs_to_the_end_and_exits_zero(graded: dict) -> None:
    assert graded["status"] == 0
    assert len(graded["by_learner"]) == 13


def test_the_classmate_is_graded_correctly_whatever_the_others_do(graded: dict) -> None:
    victim = graded["by_learner"]["victim"]
    public = [c for e in victim["exercises"] for c in e["checks"] if not c["hidden"]]
    assert len(public) == 11 and all(c["status"] == grading.PASSED for c in public), json.dumps(public, indent=1)[:2000]
    assert victim["cells"] == [] and victim["flags"] == []


@pytest.mark.parametrize(
    "attack",
    [
        "forges_channel_frames",
        "writes_to_every_proc_fd",
        "swaps_pytest_code",
        "spies",
        "plants_files",
        "stops_everyone_and_stays",
        "fills_the_disk",
        "always_equal_objects",
        "floods_the_channel",
    ],
)
def test_an_attack_from_a_blank_lab_earns_nothing(graded: dict, attack: str) -> None:
    assert points(graded, attack) == 0.0, json.dumps(graded["by_learner"][attack]["exercises"], indent=1)[:2000]


def test_a_patched_tracemalloc_does_not_hide_memory_that_grows(graded: dict) -> None:
    checks = {c["name"]: c for e in graded["by_learner"]["patches_tracemalloc"]["exercises"] for c in e["checks"]}
    assert checks["test_memory_stays_flat_as_the_input_grows"]["status"] != grading.PASSED


def test_the_sandbox_shows_no_secret_and_no_file_of_the_grader(graded: dict) -> None:
    checks = [
        c for e in graded["by_learner"]["spies"]["exercises"] if e["exercise"] == "lab01.batched" for c in e["checks"]
    ]
    messages = " ".join(c["message"] for c in checks if not c["hidden"])
    assert "NOTHING-FOUND" in messages and "LEAKED" not in messages, messages[:1500]


def test_no_secret_reaches_any_report_or_the_terminal(graded: dict) -> None:
    texts = [graded["terminal"]] + [p.read_text(errors="replace") for p in graded["out"].rglob("*") if p.is_file()]
    for secret in (SECRET, HIDDEN_MARK, VICTIM_MARK):
        assert not any(secret in text for text in texts), secret


def test_nothing_outside_the_reports_is_written(graded: dict) -> None:
    for path, data in graded["before"].items():
        assert path.read_bytes() == data, f"{path} changed"
    now = sorted(str(p) for p in (REPO / "tests").rglob("*") if "__pycache__" not in p.parts)
    assert now == graded["repo_files"], "files appeared in tests/"
    assert not (REPO / "tests" / "labs" / "__pycache__" / "test_lab01_generators.cpython-311-pytest-9.2.0.pyc").exists()
    assert not (REPO / "solutions" / "planted.py").exists()
    assert not (graded["out"] / "feedback").is_symlink() and (graded["out"] / "feedback").is_dir()
    assert shutil.disk_usage("/dev/shm").used - graded["shm_before"] < 50 * 1024 * 1024, (
        "the sandbox's /dev/shm is its own"
    )


def test_no_process_of_the_grading_is_left(graded: dict) -> None:
    scratch = str(graded["scratch"])
    left = []
    for proc in psutil.process_iter(["cmdline"]):
        try:
            line = " ".join(proc.info["cmdline"] or [])
            if SURVIVOR in line or scratch in line or proc.cwd().startswith(scratch):
                left.append((proc.pid, line[:80]))
        except psutil.Error:
            continue
    assert left == []


def test_a_notebook_with_a_cell_that_is_not_text_gets_a_clear_problem(graded: dict) -> None:
    grade = graded["by_learner"]["non_string_source"]
    assert "source is not text" in grade["problem"] and grade["points"] == 0


def test_a_later_grading_is_not_changed_by_what_an_earlier_class_planted(graded: dict, tmp_path: Path) -> None:
    hostile.blank(tmp_path / "class" / "later")
    grades = grading.grade([tmp_path / "class"], tmp_path / "out", jobs=1, limits=LIMITS, progress=False)
    assert [g.points for g in grades] == [0.0]
