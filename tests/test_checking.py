"""How learner code is loaded and how check() reports — the machinery behind every lab."""

from __future__ import annotations

import textwrap
import threading
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from streamcourse import checking
from streamcourse.cells import CellOutcome


def notebook(tmp_path: Path, *sources: str) -> Path:
    nb = new_notebook(cells=[new_code_cell(textwrap.dedent(s)) for s in sources])
    nb.metadata["streamcourse"] = {"lab": "lab01"}
    path = tmp_path / "lab01_generators.ipynb"
    nbformat.write(nb, path)
    return path


def test_a_cell_that_raises_is_recorded_and_later_cells_still_run(tmp_path: Path) -> None:
    ns = checking.execute_notebook(notebook(tmp_path, "x = 1", "1 / 0", "y = x + 1"))
    assert ns.values["y"] == 2
    assert [(e.index, e.error.split(":")[0]) for e in ns.errors] == [(1, "ZeroDivisionError")]


def test_top_level_await_runs_as_in_jupyter(tmp_path: Path) -> None:
    ns = checking.execute_notebook(notebook(tmp_path, "import asyncio", "await asyncio.sleep(0)\nvalue = 42"))
    assert ns.values["value"] == 42 and ns.errors == []


def test_magics_and_shell_lines_are_skipped(tmp_path: Path) -> None:
    ns = checking.execute_notebook(notebook(tmp_path, "%matplotlib inline\n!ls\nz = 3"))
    assert ns.values["z"] == 3 and ns.errors == []


def test_check_cells_are_not_run_when_a_notebook_is_checked(tmp_path: Path) -> None:
    recorder = "calls = []\ndef check(exercise):\n    calls.append(exercise)"
    ns = checking.execute_notebook(notebook(tmp_path, recorder, 'check("lab01.batched")', "after = True"))
    assert ns.values["after"] and ns.values["calls"] == [], "the check() cell ran: it should have been skipped"


def test_what_the_notebook_prints_is_not_echoed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    checking.execute_notebook(notebook(tmp_path, "for _ in range(1000): print('flood')"))
    assert "flood" not in capsys.readouterr().out


def test_a_missing_definition_fails_with_advice_and_the_cell_error() -> None:
    ns = checking.Namespace({}, [CellOutcome(2, "SyntaxError: invalid syntax")], origin="my.ipynb")
    with pytest.raises(pytest.fail.Exception) as failure:
        _ = checking.Submission(ns).batched
    message = str(failure.value)
    assert "`batched` is not defined" in message and "cell 2 of my.ipynb raised SyntaxError" in message


def test_check_report_runs_only_the_named_exercise(tmp_path: Path) -> None:
    solved = checking.execute_notebook(checking.SOLUTIONS_DIR / "lab01_generators.ipynb")
    report = checking.check_report("lab01.batched", solved)
    assert report.passed and {r.exercise for r in report.results} == {"lab01.batched"}
    assert str(report).startswith(f"lab01.batched: {len(report.results)}/{len(report.results)} checks passed")


def test_a_check_that_timed_out_refuses_a_second_run_beside_it_until_it_ends() -> None:
    release = threading.Event()
    hanging = checking.Namespace({"batched": lambda rows, max_bytes: iter([]) if release.wait(30) else iter([])})
    first = checking.check_report("lab01.batched", hanging, timeout=0.3)
    assert "did not finish within 0.3 s" in first.problem and "Restart the kernel" in first.problem
    second = checking.check_report("lab01.read_chunks", checking.Namespace({}))
    assert not second.results, "no second pytest run may start while the first is alive"
    assert "lab01.batched from an earlier check() are still running" in second.problem
    assert "Restart the kernel" in second.problem
    release.set()
    for thread in threading.enumerate():
        if thread.name == "streamcourse-check":
            thread.join(60)
    solved = checking.execute_notebook(checking.SOLUTIONS_DIR / "lab01_generators.ipynb")
    assert checking.check_report("lab01.batched", solved).passed, "once the old run has ended, checking works again"


def test_a_stub_is_reported_as_not_written_yet() -> None:
    blank = checking.execute_notebook(checking.REPO / "labs" / "lab01_generators.ipynb")
    report = checking.check_report("lab01.read_chunks", blank)
    assert not report.passed
    assert all(r.message.startswith("not written yet") for r in report.results)


def test_a_failure_shows_the_checks_words_not_its_code() -> None:
    wrong = checking.Namespace({"batched": lambda rows, max_bytes: iter(list(rows))})
    report = checking.check_report("lab01.batched", wrong)
    messages = " ".join(r.message for r in report.results)
    assert "each chunk should hold as many whole rows" in messages
    assert "assert " not in messages and "submission." not in messages


def test_an_unknown_exercise_lists_the_known_ones() -> None:
    report = checking.check_report("lab01.nope", checking.Namespace({}))
    assert "no checks for 'lab01.nope'" in report.problem and "lab01.batched" in report.problem


def test_a_check_run_that_breaks_off_is_never_shown_as_a_pass(break_off_check_runs) -> None:
    break_off_check_runs(checking)
    solved = checking.execute_notebook(checking.SOLUTIONS_DIR / "lab01_generators.ipynb")
    report = checking.check_report("lab01.batched", solved)
    assert not report.passed and report.results == []
    assert report.problem.startswith("only 1 of ") and "Run the check again" in report.problem


def test_a_check_without_an_exercise_marker_is_refused(tmp_path: Path) -> None:
    (tmp_path / "test_unmarked.py").write_text("def test_x(submission):\n    pass\n")
    run = checking.run_checks(checking.Namespace({}), check_dirs=[tmp_path])
    assert run.results == [] and "without @pytest.mark.exercise" in run.output


def test_within_fails_instead_of_hanging() -> None:
    import threading

    never = threading.Event()
    with pytest.raises(pytest.fail.Exception, match="did not finish within 0.2 s"):
        checking.within(0.2, never.wait)
