"""Run directories for tests of `metrics`, `report`, `status` and `runs` without Ray: a run.json as
`train` writes it (indent 2, atomically), a job log of slime's lines (tests.job_logs), and what the
run's collector leaves (runner.runs.collector, run for real over that log)."""

from __future__ import annotations

import os
from pathlib import Path

from runner.runs.collector import RunCollector
from runner.runs.identity import identity
from runner.runs.progress import RunShape
from runner.runs.record import write_json_atomic
from tests.job_logs import job_log

ARGV = ["python", "/slime/train.py", "--num-rollout", "300", "--rollout-batch-size", "16", "--n-samples-per-prompt",
        "4", "--global-batch-size", "64", "--eval-interval", "5", "--save-interval", "20"]


def make_run(runs: Path, run_id: str, rollouts: range, *, state: str = "succeeded", lr: str = "1e-6",
             resumed_from: str | None = None, collect: bool = True, seconds: float = 100.0,
             start: float = 1_765_000_000.0, speed: float = 1.0) -> Path:
    run_dir = runs / run_id
    run_dir.mkdir(parents=True)
    record = {
        "schema": 1, "id": run_id, "dir": str(run_dir), "state": state, "recipe": "megatron-8gpu",
        "created_at": "2026-12-05T01:00:00+0000", "started_at": "2026-12-05T01:00:00+0000",
        "ended_at": None if state == "running" else "2026-12-05T03:00:00+0000",
        "exit_code": None if state == "running" else 0, "detail": "",
        "request": {"recipe": "megatron-8gpu", "overrides": [{"set": [f"lr={lr}"], "unset": [], "low_memory": False,
                                                             "extra_argv": []}]},
        "resumed_from": {"run": resumed_from, "iteration": str(rollouts.start - 1)} if resumed_from else None,
        "checkpoint": {"folder": str(run_dir / "checkpoints"), "load": str(run_dir / "checkpoints"),
                       "save": str(run_dir / "checkpoints"), "save_interval": "20"},
        "job": {"entrypoint": [*ARGV, "--lr", lr]},
        "logs": {"job": str(run_dir / "job.log"), "runner": None},
        "software": {"runner": {"version": "0.1.0", "rev": "0123abcd"}, "pins": {"sha256": "feedbeef"},
                     "flake_lock": {"nixpkgs": {"owner": "NixOS", "repo": "nixpkgs", "rev": "8fd9daa3"}}},
        "supervisor": {**identity(os.getpid()), "detached": True},
    }
    write_json_atomic(run_dir / "run.json", record)
    (run_dir / "job.log").write_text(job_log(rollouts, eval_interval=5, start=start + rollouts.start * seconds,
                                             seconds=seconds, eval_first=not resumed_from, speed=speed))
    if collect:
        RunCollector(run_dir, RunShape.from_record(record)).poll(final=state != "running")
    return run_dir
