"""Broken and hostile lab01 submissions, made from the real notebooks (used by the grader's tests and bench).

Each maker writes ``<folder>/lab01_generators.ipynb`` for one learner and
returns what the grader should give it: the points it has earned, which is
always what its correct exercises are worth — a hang or a crash must not cost
what was already earned.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell

REPO = Path(__file__).resolve().parents[2]
SOLUTION = REPO / "solutions" / "lab01_generators.ipynb"
BLANK = REPO / "labs" / "lab01_generators.ipynb"
CHECK_FILE = REPO / "tests" / "labs" / "test_lab01_generators.py"
WRONG = REPO / "tests" / "labs" / "wrong"
NAME = "lab01_generators.ipynb"
FULL = 10.0  # lab01: read_chunks 4 + batched 6


def _read(path: Path) -> nbformat.NotebookNode:
    return nbformat.read(path, as_version=4)


def _write(nb: nbformat.NotebookNode, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / NAME
    path.write_text(nbformat.writes(nb), encoding="utf-8")
    return path


def _exercise_index(nb: nbformat.NotebookNode, exercise: str) -> int:
    return next(
        i for i, c in enumerate(nb.cells) if c.get("metadata", {}).get("streamcourse", {}).get("exercise") == exercise
    )


def with_cell(source: str, after: str = "lab01.read_chunks", base: Path = SOLUTION) -> nbformat.NotebookNode:
    """The notebook with one extra code cell right after an exercise cell."""
    nb = _read(base)
    nb.cells.insert(_exercise_index(nb, after) + 1, new_code_cell(source))
    return nb


def replace_exercise(exercise: str, source: str, base: Path = SOLUTION) -> nbformat.NotebookNode:
    nb = _read(base)
    nb.cells[_exercise_index(nb, exercise)].source = source
    return nb


# --------------------------------------------------------------------------- the makers: folder -> expected points


def right(folder: Path) -> float:
    _write(_read(SOLUTION), folder)
    return FULL


def blank(folder: Path) -> float:
    _write(_read(BLANK), folder)
    return 0.0


def wrong(mistake: str) -> Callable[[Path], float | None]:
    """A known wrong answer of lab01 (tests/labs/wrong), run after the solution's cells: partial credit."""
    exercise, name = mistake.split("/")

    def make(folder: Path) -> float | None:
        code = (WRONG / exercise / f"{name}.py").read_text(encoding="utf-8")
        nb = _read(SOLUTION)
        nb.cells.insert(_exercise_index(nb, exercise) + 1, new_code_cell(code))
        _write(nb, folder)
        return None  # somewhere between 0 and full marks

    return make


def infinite_loop(folder: Path) -> float:
    _write(with_cell("while True:\n    pass"), folder)
    return FULL


def infinite_loop_ignoring_the_alarm(folder: Path) -> float:
    _write(with_cell("import signal\nsignal.signal(signal.SIGALRM, signal.SIG_IGN)\nwhile True:\n    pass"), folder)
    return FULL


def infinite_generator(folder: Path) -> float:
    source = "def batched(rows, max_bytes):\n    while True:\n        yield 'row\\n'"
    _write(replace_exercise("lab01.batched", source), folder)
    return 4.0  # read_chunks is right; batched never ends, which its checks see at once


def sys_exit(folder: Path) -> float:
    _write(with_cell("import sys\nsys.exit(1)"), folder)
    return FULL


def os_exit(folder: Path) -> float:
    _write(with_cell("import os\nos._exit(3)"), folder)
    return FULL


_BATCHED_BODY = (
    "    chunk, size = [], 0\n"
    "    for row in rows:\n"
    "        n = len(row.encode())\n"
    "        if chunk and size + n > max_bytes:\n"
    "            yield ''.join(chunk)\n"
    "            chunk, size = [], 0\n"
    "        chunk.append(row)\n"
    "        size += n\n"
    "    if chunk:\n"
    "        yield ''.join(chunk)\n"
)


def killed_during_a_check(folder: Path) -> float:
    """batched kills its own process when a check asks for 10-byte chunks (two checks do)."""
    source = (
        "import os, signal\n\n"
        "def batched(rows, max_bytes):\n"
        "    if max_bytes == 10:\n"
        "        os.kill(os.getpid(), signal.SIGKILL)\n"
    ) + _BATCHED_BODY
    _write(replace_exercise("lab01.batched", source), folder)
    return 4.0 + 6.0 * 4 / 6  # the two 10-byte checks crash; the other four pass


def hangs_in_a_check(folder: Path) -> float:
    """batched loops forever when the memory check asks for 256 KiB chunks (only it does); it is right otherwise."""
    source = ("def batched(rows, max_bytes):\n    while max_bytes == 256 * 1024:\n        pass\n") + _BATCHED_BODY
    _write(replace_exercise("lab01.batched", source), folder)
    return 4.0 + 6.0 * 5 / 6  # the memory check times out; the other five pass


def memory_bomb(folder: Path) -> float:
    source = "huge = bytearray(64 * 1024 ** 3)"
    nb = with_cell(source)
    nb.cells.insert(
        _exercise_index(nb, "lab01.batched") + 1,
        new_code_cell("blocks = []\nwhile True:\n    blocks.append(bytearray(64 * 1024 ** 2))"),
    )
    _write(nb, folder)
    return FULL


def print_flood(folder: Path) -> float:
    nb = with_cell("import os\nfor i in range(200_000):\n    print('spam ' * 40)\nos.write(1, b'x' * 50_000_000)")
    index = _exercise_index(nb, "lab01.batched")
    nb.cells[index].source = nb.cells[index].source.replace(
        "    for row in rows:\n", "    for row in rows:\n        print(row * 50)\n"
    )
    _write(nb, folder)
    return FULL


def not_json(folder: Path) -> float:
    folder.mkdir(parents=True, exist_ok=True)
    text = SOLUTION.read_text(encoding="utf-8")
    (folder / NAME).write_text(text[: len(text) // 2], encoding="utf-8")  # truncated mid-way
    return 0.0


def nbformat_v3(folder: Path) -> float:
    nb = nbformat.convert(_read(SOLUTION), 3)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / NAME).write_text(nbformat.writes(nb, version=3), encoding="utf-8")
    return FULL


def exercise_cell_deleted(folder: Path) -> float:
    nb = _read(SOLUTION)
    del nb.cells[_exercise_index(nb, "lab01.batched")]
    _write(nb, folder)
    return 4.0


def metadata_stripped(folder: Path) -> float:
    nb = _read(SOLUTION)
    nb.metadata = {}
    for cell in nb.cells:
        cell.metadata = {}
    _write(nb, folder)
    return FULL


def edited_points(folder: Path) -> float:
    """The learner raised the points in their own metadata: the solution's points count."""
    nb = _read(BLANK)
    for cell in nb.cells:
        if "streamcourse" in cell.get("metadata", {}):
            cell.metadata["streamcourse"]["points"] = 1000
    _write(nb, folder)
    return 0.0


def server_never_stopped(folder: Path) -> float:
    nb = with_cell(
        "from fastapi import FastAPI\nfrom streamcourse import serve\n"
        "left_running = serve(FastAPI(), name='never-stopped')"
    )
    nb.cells.insert(
        _exercise_index(nb, "lab01.batched") + 1,
        new_code_cell(
            "import http.server\n"
            "http.server.HTTPServer(('127.0.0.1', 0), http.server.SimpleHTTPRequestHandler).serve_forever()"
        ),
    )
    _write(nb, folder)
    return FULL


def tamper(out_dir: Path) -> Callable[[Path], float]:
    """A blank lab that tries to rewrite the checks and the grades, forge results and patch pytest."""

    def make(folder: Path) -> float:
        source = f"""
import json, os, subprocess, sys
from pathlib import Path
for target in [Path({str(CHECK_FILE)!r}), Path({str(out_dir)!r}) / "grades.csv", Path({str(out_dir)!r}) / "grades.json"]:
    try:
        target.write_text("def test_nothing():\\n    pass\\n")
    except OSError:
        pass
try:
    subprocess.run(["sh", "-c", "echo hacked >> {CHECK_FILE}"])
except OSError:
    pass
for fd in range(3, 64):  # forge results on every open file descriptor
    try:
        os.write(fd, (json.dumps({{"k": "result", "nodeid": "x", "status": "passed"}}) + "\\n").encode())
    except OSError:
        pass
import _pytest.reports
_pytest.reports.BaseReport.passed = property(lambda self: True)
_pytest.reports.BaseReport.failed = property(lambda self: False)
sys.modules["test_lab01_generators"] = type(sys)("test_lab01_generators")
"""
        _write(with_cell(source, base=BLANK), folder)
        return 0.0

    return make


HOSTILE: dict[str, Callable[[Path], float]] = {
    "infinite_loop": infinite_loop,
    "infinite_loop_ignoring_the_alarm": infinite_loop_ignoring_the_alarm,
    "infinite_generator": infinite_generator,
    "sys_exit": sys_exit,
    "os_exit": os_exit,
    "killed_during_a_check": killed_during_a_check,
    "hangs_in_a_check": hangs_in_a_check,
    "memory_bomb": memory_bomb,
    "print_flood": print_flood,
    "not_json": not_json,
    "nbformat_v3": nbformat_v3,
    "exercise_cell_deleted": exercise_cell_deleted,
    "metadata_stripped": metadata_stripped,
    "edited_points": edited_points,
    "server_never_stopped": server_never_stopped,
}

WRONG_ANSWERS = [f"{p.parent.name}/{p.stem}" for p in sorted(WRONG.glob("lab01.*/*.py"))]


__all__ = ["HOSTILE", "WRONG_ANSWERS", "right", "blank", "wrong", "tamper", "FULL", "CHECK_FILE"]
