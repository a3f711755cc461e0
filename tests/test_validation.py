"""validate holds each wrong answer to the checks it names, and each check to a wrong answer it rejects."""

from __future__ import annotations

from pathlib import Path

from streamcourse import validation
from streamcourse.checking import SOLUTIONS_DIR

LAB01 = SOLUTIONS_DIR / "lab01_generators.ipynb"
COUNTS_CHARACTERS = (
    "def batched(rows, max_bytes):\n"
    "    chunk = ''\n"
    "    for row in rows:\n"
    "        if chunk and len(chunk) + len(row) > max_bytes:\n"
    "            yield chunk\n"
    "            chunk = ''\n"
    "        chunk += row\n"
    "    if chunk:\n"
    "        yield chunk\n"
)


def wrong(tmp_path: Path, header: str, body: str = COUNTS_CHARACTERS) -> Path:
    path = tmp_path / "mistake.py"
    path.write_text(header + "\n" + body)
    return path


def test_a_wrong_answer_that_names_no_catcher_is_refused(tmp_path: Path) -> None:
    verdict = validation.validate_wrong_answer(LAB01, "lab01.batched", wrong(tmp_path, "# counts characters"))
    assert [f.ok for f in verdict.findings] == [False] and "first line must name its catchers" in verdict.findings[
        0
    ].text


def test_a_named_check_that_lets_the_wrong_answer_pass_is_reported(tmp_path: Path) -> None:
    header = "# rejected by: test_batched_counts_utf8_bytes_not_characters, test_no_rows_give_no_chunks"
    verdict = validation.validate_wrong_answer(LAB01, "lab01.batched", wrong(tmp_path, header))
    texts = [f.text for f in verdict.findings if not f.ok]
    assert texts == [
        "lab01.batched: wrong answer 'mistake' is NOT rejected by test_no_rows_give_no_chunks, which its first line names"
    ]


def test_a_name_that_is_no_check_of_the_exercise_is_reported(tmp_path: Path) -> None:
    verdict = validation.validate_wrong_answer(
        LAB01, "lab01.batched", wrong(tmp_path, "# rejected by: test_nothing_like_it")
    )
    assert any("names test_nothing_like_it, which is not a check of lab01.batched" in f.text for f in verdict.findings)


def test_a_wrong_answer_rejected_by_every_check_it_names_holds(tmp_path: Path) -> None:
    header = "# rejected by: test_batched_counts_utf8_bytes_not_characters"
    verdict = validation.validate_wrong_answer(LAB01, "lab01.batched", wrong(tmp_path, header))
    assert [f.ok for f in verdict.findings] == [
        True
    ] and "test_batched_counts_utf8_bytes_not_characters" in verdict.rejecting


def test_a_check_that_rejects_no_wrong_answer_and_is_no_plain_behaviour_is_reported() -> None:
    lab = validation.Verdict(
        [], checks={"lab01.batched": {"test_a", "test_b", "test_c"}}, behaviour={"lab01.batched": {"test_c"}}
    )
    answer = validation.Verdict([], "lab01.batched", {"test_a"})
    findings = validation.every_check_earns_its_place([lab, answer])
    assert [f.text.split(" rejects")[0] for f in findings] == ["lab01.batched: test_b"]
