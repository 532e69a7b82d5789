"""`status [RUN]`: is a run alive, where is it, what did it last say?

Without RUN: every active run under the runs dir, and the run active on this
machine wherever it lives (it holds the machine lock); else the latest run. A
RUN not under the runs dir is still found while it is active here. A run
recorded as starting/running whose runner is gone shows as "lost", with why:
killed, or the machine rebooted since it started.

examples:
  python -m runner status
  python -m runner status megatron-8gpu-20261129-013012-a3f2 --json
"""

from __future__ import annotations

import argparse
import json
import sys

from runner.runs.arguments import active_run, add_lookup_arguments, listable_runs_root, load_named_run, readable_runs


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


def _facts(record: dict) -> dict:
    from runner.execute import run_processes
    from runner.runs.checkpoints import latest_iteration
    from runner.runs.identity import effective_state, same_machine

    state, note = effective_state(record)
    temp_dir = (record.get("ray") or {}).get("temp_dir")
    here = same_machine(record.get("supervisor") or {})
    return {"id": record.get("id"), "state": state, "note": note, "recorded_state": record.get("state"),
            "iteration": latest_iteration((record.get("checkpoint") or {}).get("save")),
            "ray_processes": len(run_processes(temp_dir, record.get("id", ""))) if temp_dir and here else None,
            "last_log_line": _last_line((record.get("logs") or {}).get("job")),
            "exit_code": record.get("exit_code"), "dir": record.get("dir")}


def run(args) -> int:
    from runner.runs.identity import effective_state
    from runner.runs.record import ACTIVE, BadRecord, load_record
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
        records = [found[1]]
    else:
        listed = readable_runs(root)
        readable = [record for _, record in listed]
        records = [r for r in readable if effective_state(r)[0] in ACTIVE]
        # The run that holds this machine, wherever its runs dir is.
        active = active_run()
        if active is not None and active.dir not in {p.dir for p, _ in listed}:
            try:
                records.append(load_record(active))
            except BadRecord as exc:
                print(f"warning: run {active.id} is active on this machine, but {exc}", file=sys.stderr)
        if not records:
            if not readable:
                print(f"no runs under {root}", file=note_out)
                if args.json:
                    print("[]")
                return 0
            print(f"no active run under {root}; the latest:", file=note_out)
            records = [readable[-1]]
    facts = [_facts(r) for r in records]
    if args.json:
        print(json.dumps(facts if not args.run else facts[0], indent=2))
        return 0
    for record, f in zip(records, facts):
        print("\n".join(status_lines(record, f["state"], f["note"], iteration=f["iteration"],
                                     ray_processes=f["ray_processes"], last_log_line=f["last_log_line"])))
    return 0
