"""How fast an earlier run of a recipe went: the basis of a run's expected duration.

slime prints one `perf N: {...}` line per rollout N (ray/rollout.py on the
rollout side, utils/train_metric_utils.py on the train side), in its log
format `[%(asctime)s] %(filename)s:%(lineno)d - %(message)s`, behind Ray's
`(ClassName pid=..)` prefix (FACTS.md). The time between the first and the
last rollout a run's job.log shows, over the rollouts in between, is that
run's pace. `train --slurm` multiplies it by the rollouts a new run will do,
to refuse a --time that cannot be enough. The expectation leaves out the
start-up (Ray, loading checkpoints, the first rollout), so it errs short:
a limit below it is surely too short.

No earlier run with two rollouts in its log: no expectation (said so).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Iterable

from runner.runs.layout import list_runs
from runner.runs.record import BadRecord, load_record

_PERF = re.compile(r"\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)(?:,\d+)?\] [\w.]+:\d+ - perf (\d+): ")
# Enough of a job log to find a pace in, from its end (the freshest rollouts).
_TAIL_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True)
class Pace:
    seconds_per_rollout: float
    first: int
    last: int
    run_id: str

    def describe(self) -> str:
        return (f"{self.seconds_per_rollout:.1f} s per rollout, measured by run {self.run_id} over its rollouts "
                f"{self.first}..{self.last} (slime's `perf N` lines in its job.log)")


def pace_of_lines(lines: Iterable[str], run_id: str) -> Pace | None:
    """The pace between the first and the last rollout seen (the first line of each rollout counts)."""
    first_seen: dict[int, datetime] = {}
    for line in lines:
        m = _PERF.search(line)
        if m:
            rollout = int(m.group(2))
            if rollout not in first_seen:
                first_seen[rollout] = datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S")
    if len(first_seen) < 2:
        return None
    first, last = min(first_seen), max(first_seen)
    seconds = (first_seen[last] - first_seen[first]).total_seconds()
    if seconds <= 0:
        return None
    return Pace(seconds / (last - first), first, last, run_id)


def _tail_lines(path: Path) -> list[str]:
    try:
        with open(path, "rb") as f:
            f.seek(0, 2)
            size = f.tell()
            f.seek(max(0, size - _TAIL_BYTES))
            return f.read().decode(errors="replace").splitlines()
    except OSError:
        return []


def latest_pace(runs_dir: Path, recipe: str) -> Pace | None:
    """The pace of the newest run of `recipe` under runs_dir whose job.log shows two rollouts or more."""
    for paths in reversed(list_runs(runs_dir)):
        try:
            record = load_record(paths)
        except BadRecord:
            continue
        if record.get("recipe") != recipe or (record.get("request") or {}).get("test_entrypoint"):
            continue
        pace = pace_of_lines(_tail_lines(paths.job_log), paths.id)
        if pace:
            return pace
    return None
