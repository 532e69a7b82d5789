"""`status [RUN]`: is a run alive, where is it, how far has it got, what did it last say?

Without RUN: every active run under the runs dir, and the run active on this
machine wherever it lives (it holds the machine lock); else the latest run. A
RUN not under the runs dir is still found while it is active here. A run
recorded as starting/running whose runner is gone shows as "lost", with why:
killed, or the machine rebooted since it started. A run in a Slurm job (`train
--slurm`, or started inside an allocation) whose runner is not on this machine
shows what Slurm says of the job (squeue, else sacct): queued, running, ended.
Progress comes from the run's progress.json, which its owner keeps as it reads
slime's lines: the phase (from slime's Timer lines), rollout i of N, seconds
per rollout and the ETA, the last raw reward (with a sparkline of the last
ones) and eval score, and the latest checkpoint with its age.

examples:
  python -m runner status
  python -m runner status megatron-8gpu-20261129-013012-a3f2 --json
"""

from __future__ import annotations

import argparse
import json
import sys

from runner.commands.options import active_run, add_lookup_arguments, listable_runs_root, load_named_run
from runner.runs.layout import RunPaths


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_lookup_arguments(p, run_required=False)


def _last_line(path: str | None) -> str | None:
    if not path:
        return None
    try:
        with open(path, "rb") as f:
            f.seek(0, 2)
            size = f.tell()
            f.seek(max(0, size - 4096))
            lines = [ln for ln in f.read().decode(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return None
    return lines[-1] if lines else None


def _facts(record: dict, paths: RunPaths) -> dict:
    from runner.launch.processes import run_processes
    from runner.runs.identity import effective_state, same_machine
    from runner.runs.listing import read_progress
    from runner.runs.watching import checkpoint_age

    state, note = effective_state(record)
    temp_dir = (record.get("ray") or {}).get("temp_dir")
    here = same_machine(record.get("supervisor") or {})
    iteration, age = checkpoint_age(record)
    return {"id": record.get("id"), "state": state, "note": note, "recorded_state": record.get("state"),
            "iteration": iteration, "checkpoint_age_s": None if age is None else round(age),
            "progress": read_progress(paths),
            "ray_processes": len(run_processes(temp_dir, record.get("id", ""))) if temp_dir and here else None,
            "last_log_line": _last_line((record.get("logs") or {}).get("job")),
            "exit_code": record.get("exit_code"), "dir": record.get("dir"),
            # The keeper's (runner.runs.keeper): which attempt, the last failed one, a restart ahead.
            "attempt": record.get("attempt"), "restart": record.get("restart"),
            "last_incident": next((a for a in reversed(record.get("attempts") or [])
                                   if isinstance(a, dict) and a.get("reason") not in (None, "stopped")), None)}


def _slurm_line(slurm: dict) -> str:
    asked = ", ".join(f"{k} {slurm[k]}" for k in ("partition", "account", "time", "qos") if slurm.get(k))
    return (f"  Slurm:      job {slurm.get('job_id') or '(not submitted)'}"
            + (f" on {', '.join(slurm['nodes'])}" if slurm.get("nodes") else "") + (f" ({asked})" if asked else "")
            + (f"; script {slurm['script']}" if slurm.get("script") else ""))


def run(args) -> int:
    from runner.runs.identity import effective_state
    from runner.runs.listing import summaries
    from runner.runs.progress_text import progress_lines
    from runner.runs.record import ACTIVE, BadRecord, load_record, relocated
    from runner.runs.report import status_lines

    root = listable_runs_root(args)
    if root is None:
        return 2
    # With --json, stdout carries JSON only: notes go to stderr.
    note_out = sys.stderr if args.json else sys.stdout
    if args.run:
        found = load_named_run(args)
        if found is None:
            return 2
        runs = [found]
    else:
        # The few fields that say which runs are active, then the whole record of those only.
        listed = summaries(root, lambda line: print(line, file=sys.stderr))
        chosen = [paths for paths, r in listed if effective_state(r)[0] in ACTIVE]
        # The run that holds this machine, wherever its runs dir is.
        active = active_run()
        if active is not None and active.dir not in {p.dir for p, _ in listed}:
            chosen.append(active)
        if not chosen:
            if not listed:
                print(f"no runs under {root}", file=note_out)
                if args.json:
                    print("[]")
                return 0
            print(f"no active run under {root}; the latest:", file=note_out)
            chosen = [listed[-1][0]]
        runs = []
        for paths in chosen:
            try:
                runs.append((paths, relocated(load_record(paths), paths.dir)))
            except BadRecord as exc:  # rewritten since it was listed
                print(f"warning: skipped run {paths.id}: {exc}", file=sys.stderr)
    records = [record for _, record in runs]
    facts = [_facts(record, paths) for paths, record in runs]
    if args.json:
        print(json.dumps(facts if not args.run else facts[0], indent=2))
        return 0
    for record, f in zip(records, facts):
        print("\n".join(status_lines(record, f["state"], f["note"], iteration=f["iteration"],
                                     ray_processes=f["ray_processes"], last_log_line=f["last_log_line"])))
        if record.get("slurm"):
            print(_slurm_line(record["slurm"]))
        print("\n".join(progress_lines(f["progress"], active=f["state"] in ACTIVE,
                                       checkpoint=(f["iteration"], f["checkpoint_age_s"]))))
    return 0
