"""``grade --shard I/N`` on several machines, ``merge`` into the reports one machine would have written."""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path
from typing import Any

import pytest

from streamcourse import grading, policy, shards
from streamcourse.records import SubmissionRecord
from streamcourse.scoring import lab_specs

sys.path.insert(0, str(Path(__file__).parent / "grading_fixtures"))
import fake_engine
import hostile
import lms_zips

RUN_TIME = ("graded_at", "seconds")


class Replay:
    """Records the real engine's records of one run (by submission), and gives them back to later runs."""

    def __init__(self) -> None:
        self.records: dict[str, SubmissionRecord] = {}

    def record(self, submissions: list[Any], *rest: Any) -> tuple[list[Any], dict[str, Any]]:
        records, ready = grading.run_engine(submissions, *rest)
        self.records.update({s.origin: r for s, r in zip(submissions, records, strict=True)})
        return records, ready

    def replay(
        self, submissions: list[Any], labs: Any, check_dirs: Any, jobs: Any, limits: Any, isolated: bool, on_done: Any
    ) -> tuple[list[Any], dict[str, Any]]:
        records = [
            dataclasses.replace(self.records[s.origin], id=n, path=str(s.path)) for n, s in enumerate(submissions)
        ]
        for r in records:
            on_done(r)
        return records, {"collect_errors": []}


def _files(out: Path) -> dict[str, bytes]:
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}


def _without_run_time(data: bytes) -> dict[str, Any]:
    report = json.loads(data)
    return {k: v for k, v in report.items() if k not in RUN_TIME}


@pytest.fixture(scope="module")
def lab01_class(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A Canvas download of a small lab01 class: right, blank (late), a known wrong answer, stripped metadata."""
    root = tmp_path_factory.mktemp("shard_class")
    learners = []
    for n, (name, make) in enumerate(
        [
            ("rightr", hostile.right),
            ("blankb", hostile.blank),
            ("wrongw", hostile.wrong("lab01.batched/counts_characters")),
            ("metam", hostile.metadata_stripped),
        ]
    ):
        make(root / name)
        learners.append((name, str(100 + n), name == "blankb", (root / name / hostile.NAME).read_bytes()))
    return lms_zips.canvas(root / "canvas.zip", learners)


def test_three_shards_merged_give_the_reports_of_one_run(lab01_class: Path, tmp_path: Path) -> None:
    late = policy.LatePolicy(policy.parse_due("2025-03-01T23:59+00:00"), 0.1)
    options = dict(late=late, gradebooks=("canvas",), assignments={"lab01": "Lab 1 (4242)"})
    limits = grading.Limits(timeout=30)
    replay = Replay()
    single = grading.grade(
        [lab01_class],
        tmp_path / "single",
        jobs=2,
        limits=limits,
        progress=False,
        options=grading.GradeOptions(**options),
        engine=replay.record,
    )  # the real engine, once
    assert [g.learner for g in single] == ["blankb_101", "metam_103", "rightr_100", "wrongw_102"]
    assert {g.learner: g.points for g in single}["rightr_100"] == 10 and single[0].late and single[0].points == 0
    outs = []
    for index in (1, 2, 3):
        shard = shards.Shard(index, 3)
        grading.grade(
            [lab01_class],
            tmp_path / f"shard{index}",
            limits=limits,
            progress=False,
            options=grading.GradeOptions(**options, shard=shard),
            engine=replay.replay,
        )
        outs.append(tmp_path / f"shard{index}")
    per_shard = [[s["learner"] for s in shards.read_run(o)["submissions"]] for o in outs]
    assert sorted(sum(per_shard, [])) == [g.learner for g in single], "every learner in exactly one shard"
    shards.merge(outs, tmp_path / "merged")
    one, merged = _files(tmp_path / "single"), _files(tmp_path / "merged")
    assert sorted(one) == sorted(merged)
    assert _without_run_time(one.pop("grades.json")) == _without_run_time(merged.pop("grades.json"))
    assert one == merged, [name for name in one if one[name] != merged[name]]


def _shard_out(tmp_path: Path, name: str, index: int, of: int, **options: Any) -> Path:
    (tmp_path / "class" / "ann").mkdir(parents=True, exist_ok=True)
    (tmp_path / "class" / "ann" / "lab01_generators.ipynb").write_bytes(lms_zips.notebook())
    grading.grade(
        [tmp_path / "class"],
        tmp_path / name,
        progress=False,
        engine=fake_engine.FakeEngine(),
        options=grading.GradeOptions(specs=lab_specs()[0], shard=shards.Shard(index, of), **options),
    )
    return tmp_path / name


def test_merge_refuses_a_missing_or_doubled_shard(tmp_path: Path) -> None:
    first, second = _shard_out(tmp_path, "a", 1, 3), _shard_out(tmp_path, "b", 2, 3)
    with pytest.raises(shards.ShardError, match=r"need shards 1..3 once each; missing \[3\], given twice none"):
        shards.merge([first, second], tmp_path / "merged")
    with pytest.raises(shards.ShardError, match=r"given twice \[1\]"):
        shards.merge([first, first, second], tmp_path / "merged")
    assert not (tmp_path / "merged" / "grades.json").exists()


def test_merge_refuses_shards_graded_with_different_options(tmp_path: Path) -> None:
    first = _shard_out(tmp_path, "a", 1, 2)
    second = _shard_out(tmp_path, "b", 2, 2, gradebooks=("canvas",))
    with pytest.raises(shards.ShardError, match="graded with different options"):
        shards.merge([first, second], tmp_path / "merged")


def test_merge_refuses_a_folder_that_is_no_shard(tmp_path: Path) -> None:
    with pytest.raises(shards.ShardError, match="the --out folder of a shard"):
        shards.merge([tmp_path], tmp_path / "merged")


@pytest.mark.parametrize("text", ["0/3", "4/3", "1-3", "x"])
def test_a_shard_option_that_cannot_be_read_says_the_form(text: str) -> None:
    with pytest.raises(shards.ShardError, match=r"give I/N with 1 <= I <= N"):
        shards.Shard.parse(text)


def test_shards_hold_each_learner_once_whatever_the_order() -> None:
    learners = [f"learner{n:03d}" for n in range(300)]
    held = [[name for name in learners if shards.Shard(i, 4).holds(name)] for i in (1, 2, 3, 4)]
    assert sorted(sum(held, [])) == learners
    assert all(40 < len(h) < 110 for h in held), [len(h) for h in held]
    assert held[0] == [name for name in reversed(learners) if shards.Shard(1, 4).holds(name)][::-1]
