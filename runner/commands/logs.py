"""`logs [-f] RUN`: print a run's job log; -f follows it until the run ends.

The job log (job.log in the run directory) holds everything slime's train.py
printed, as Ray streamed it. --runner shows the runner's own output instead
(detached runs: Ray head start-up, node registration, clean-up; a `train
--slurm` run: the Slurm job's output file).

examples:
  python -m runner logs -f megatron-8gpu-20261129-013012-a3f2
  python -m runner logs --runner megatron-8gpu-20261129-013012-a3f2
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from runner.commands.options import add_lookup_arguments, load_named_run
from runner.runs.layout import RunPaths, read_from


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_lookup_arguments(p)
    p.add_argument("-f", "--follow", action="store_true", help="keep printing new lines until the run ends")
    p.add_argument("--runner", action="store_true", help="the runner's own log (runner.log) instead of the job's")
    p.add_argument("--poll", type=float, default=0.5, help=argparse.SUPPRESS)


def _missing_note(path: Path, paths: RunPaths, record: dict, runner_log: bool) -> str:
    from runner.runs.identity import effective_state
    from runner.runs.record import ACTIVE

    runner_path = _runner_log(paths, record)
    if runner_log and (record.get("supervisor") or {}).get("detached") is False and runner_path == paths.runner_log:
        return "(a foreground run has no runner.log: its output went to the terminal that started it)"
    state = effective_state(record)[0]
    return (f"(no {path.name}{' yet' if state in ACTIVE else ''}; the run is {state}"
            + ("" if runner_log or not runner_path.exists() else f"; see {runner_path}") + ")")


def _runner_log(paths: RunPaths, record: dict) -> Path:
    """runner.log, or for a run `train --slurm` submitted, the Slurm job's output file (the runner's output)."""
    output = (record.get("slurm") or {}).get("output")
    return Path(output) if output and (record.get("slurm") or {}).get("script") and "%j" not in output \
        else paths.runner_log


def run(args) -> int:
    from runner.runs.identity import effective_state
    from runner.runs.record import ACTIVE, BadRecord, load_record
    from runner.runs.report import exit_text

    found = load_named_run(args)
    if found is None:
        return 2
    paths, record = found
    path = _runner_log(paths, record) if args.runner else paths.job_log
    out = sys.stdout.buffer
    data, offset = read_from(path, 0)
    out.write(data)
    out.flush()
    foreground_runner = (args.runner and (record.get("supervisor") or {}).get("detached") is False
                         and path == paths.runner_log)
    if not args.follow or foreground_runner:  # a foreground run never gets a runner.log to follow
        if not path.exists():
            print(_missing_note(path, paths, record, args.runner), file=sys.stderr)
        return 0
    while True:
        try:
            record = load_record(paths)
        except BadRecord as exc:
            # The run directory was removed (or its run.json spoiled) while we followed it.
            gone = "its directory was removed" if not paths.record.exists() else str(exc)
            print(f"(stopped following run {paths.id}: {gone})", file=sys.stderr)
            return 1
        ended = effective_state(record)[0] not in ACTIVE
        data, offset = read_from(path, offset)
        if data:
            out.write(data)
            out.flush()
        elif ended:
            # The state is written after the log's last chunk: one more read catches it.
            data, offset = read_from(path, offset)
            out.write(data)
            out.flush()
            try:
                record = load_record(paths)
            except BadRecord:
                pass  # removed just now: the record read above stands
            print(f"(run {paths.id} {effective_state(record)[0]}, {exit_text(record)})",
                  file=sys.stderr)
            return 0
        time.sleep(args.poll)
