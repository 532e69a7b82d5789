"""`runs`: list the runs under the runs dir (id, recipe, state, progress, start, duration), oldest first.

State is the recorded one, except a run recorded as starting/running whose
runner is gone (killed, or the machine rebooted) shows as "lost". Progress:
rollouts trained of --num-rollout, and an active run's phase (progress.json,
kept by the run's owner as it reads the job log).

examples:
  python -m runner runs
  python -m runner runs --runs-dir /shared/runs --json
"""

from __future__ import annotations

import argparse
import json

from runner.commands.options import add_lookup_arguments, listable_runs_root


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_lookup_arguments(p, run_required=None)


def run(args) -> int:
    import sys

    from runner.runs.identity import effective_state
    from runner.runs.listing import read_progress, summaries
    from runner.runs.progress_text import progress_cell
    from runner.runs.record import ACTIVE
    from runner.runs.report import runs_table

    root = listable_runs_root(args)
    if root is None:
        return 2
    listed = summaries(root, lambda line: print(line, file=sys.stderr))
    rows = [(record, effective_state(record)[0]) for _, record in listed]
    progress = [read_progress(paths) for paths, _ in listed]
    if args.json:
        print(json.dumps([{"id": r.get("id"), "recipe": r.get("recipe"), "state": state,
                           "recorded_state": r.get("state"), "created_at": r.get("created_at"),
                           "ended_at": r.get("ended_at"), "exit_code": r.get("exit_code"), "dir": r.get("dir"),
                           "progress": p} for (r, state), p in zip(rows, progress)], indent=2))
        return 0
    if not rows:
        print(f"no runs under {root}")
        return 0
    print(runs_table(rows, [progress_cell(p, state in ACTIVE) for (_, state), p in zip(rows, progress)]))
    return 0
