"""Grade a big class on several machines: ``grade --shard I/N`` and ``merge OUT...``.

A shard holds the learners whose name hashes (SHA-256, not Python's salted
``hash``) to ``I - 1`` modulo ``N``: the same learners on every machine, each
learner wholly in one shard (so "several notebooks for one lab" is decided
where all of them are), whatever order the files were found in. Names are made
unique over the whole class before sharding (``streamcourse.intake``), so any
batch runner — a CI matrix, Slurm array jobs, Kubernetes Jobs — can run
``grade --shard $I/$N --out shard-$I`` with the same inputs everywhere.

``merge`` reads each shard's ``grades.json`` (the full record of every grade),
checks that the shards are 1..N of one run with one configuration, and writes
the reports again with the same writer as a single run: the files are the
same as one machine's, except the run's own time (``graded_at``, ``seconds``).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from streamcourse import reports
from streamcourse.outdir import ReportDir
from streamcourse.scoring import Grade, from_json

__all__ = ["ShardError", "Shard", "merge", "read_run"]

T = TypeVar("T")


class ShardError(ValueError):
    """Shards that cannot be merged, or a ``--shard`` that cannot be read; the message says why."""


@dataclass(frozen=True)
class Shard:
    index: int  # 1..of
    of: int

    @classmethod
    def parse(cls, text: str) -> Shard:
        match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
        if not match or not 1 <= int(match[1]) <= int(match[2]):
            raise ShardError(f"--shard {text!r}: give I/N with 1 <= I <= N, e.g. --shard 2/3")
        return cls(int(match[1]), int(match[2]))

    def holds(self, learner: str) -> bool:
        digest = hashlib.sha256(learner.encode("utf-8")).digest()
        return int.from_bytes(digest[:8], "big") % self.of == self.index - 1

    def select(self, items: Iterable[T], learner_of: Any = lambda s: s.learner) -> list[T]:
        return [item for item in items if self.holds(learner_of(item))]


def read_run(out: Path) -> dict[str, Any]:
    path = Path(out) / "grades.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ShardError(f"{path}: {exc.strerror or exc}; is {out} the --out folder of a shard?") from None
    except json.JSONDecodeError as exc:
        raise ShardError(f"{path} is not valid JSON ({exc}); grade that shard again") from None
    if not isinstance(data, dict) or "submissions" not in data:
        raise ShardError(f"{path} is not a grades.json written by streamcourse grade")
    return data


def _check_complete(runs: list[dict[str, Any]], outs: list[Path]) -> None:
    found = [run.get("shard") for run in runs]
    plain = [str(o) for o, s in zip(outs, found, strict=True) if s is None]
    if plain:
        raise ShardError(f"not graded with --shard: {', '.join(plain)}")
    shards: list[dict[str, int]] = [s for s in found if s is not None]
    total = {s["of"] for s in shards}
    if len(total) != 1:
        raise ShardError(f"the shards come from splits into different numbers of parts: {sorted(total)}")
    (n,) = total
    seen = sorted(s["index"] for s in shards)
    if seen != list(range(1, n + 1)):
        missing = sorted(set(range(1, n + 1)) - set(seen))
        twice = sorted({i for i in seen if seen.count(i) > 1})
        raise ShardError(f"need shards 1..{n} once each; missing {missing or 'none'}, given twice {twice or 'none'}")
    configs = {json.dumps([run.get("config"), run.get("limits")], sort_keys=True) for run in runs}
    if len(configs) != 1:
        raise ShardError(
            "the shards were graded with different options (checks, limits, late policy or gradebooks); "
            "grade them again with the same command line"
        )


def merge(outs: list[Path], out: Path) -> list[Grade]:
    """Combine the reports of shards 1..N into ``out``, as one machine would have written them."""
    runs = [read_run(o) for o in outs]
    _check_complete(runs, outs)
    grades = sorted((from_json(s) for run in runs for s in run["submissions"]), key=lambda g: (g.learner, g.lab))
    meta = {key: value for key, value in runs[0].items() if key not in ("submissions", "shard")}
    meta.update(
        graded_at=max(run["graded_at"] for run in runs),
        seconds=max(run["seconds"] for run in runs),
        warnings=[w for run in runs for w in run.get("warnings", [])],
        intake=[n for run in runs for n in run.get("intake", [])],
    )
    with ReportDir(out) as target:
        reports.write_reports(grades, target, meta)
    return grades
