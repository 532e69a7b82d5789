"""`stop RUN`: stop the job, then exactly the Ray processes that run started.

Decide first (pure apart from reading /proc), then act:
  the run already ended       nothing to stop (leftovers, if any, still go)
  its owner is alive here     SIGTERM to it: the foreground runner or detached
                              supervisor stops the job through Ray, then its
                              Ray, and records "stopped"; SIGKILL after
                              --timeout (its children die with it:
                              PR_SET_PDEATHSIG)
  its owner is gone           (killed, or the machine rebooted) what is left of
                              the run is stopped and the run recorded as such
  owned by another host       refused: run `stop` there
  submitted with --slurm      through Slurm (runner.runs.slurm_run.stop)
Then whatever still carries the run's markers (runner.launch.processes.run_processes:
its run id in the environment, its Ray temp dir in the command line) gets
SIGTERM, then SIGKILL. Nothing is ever matched by name.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from dataclasses import dataclass

from runner.launch.processes import run_processes, sweep_run
from runner.runs import identity, slurm_run
from runner.runs.layout import RunPaths
from runner.runs.record import ACTIVE, load_record, now_iso, update_record
from runner.runs.report import exit_text


@dataclass(frozen=True)
class StopDecision:
    action: str  # "ended", "signal", "gone", "elsewhere"
    pid: int | None
    reason: str


def decide(record: dict) -> StopDecision:
    owner = record.get("supervisor") or {}
    if record.get("state") not in ACTIVE:
        return StopDecision("ended", None, f"it already ended ({record.get('state')}, {exit_text(record)})")
    live = identity.alive(owner)
    if live is None:
        return StopDecision("elsewhere", None, f"its runner lives on host {owner.get('host')}: run "
                                               f"`python -m runner stop` there")
    if live:
        return StopDecision("signal", int(owner["pid"]), f"its runner is pid {owner['pid']}")
    return StopDecision("gone", None, identity.why_gone(owner))


def _owner_uid(owner: dict) -> str:
    """The uid recorded for the run's runner, else that of the live process."""
    uid = owner.get("uid")
    if uid is None:
        uid = identity.uid_of(int(owner["pid"]))
    return "unknown" if uid is None else str(uid)


def _wait_gone(owner: dict, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not identity.alive(owner):
            return True
        time.sleep(0.2)
    return not identity.alive(owner)


def stop_run(paths: RunPaths, timeout: float = 180.0, log=sys.stderr) -> int:  # noqa: ANN001
    record = load_record(paths)
    if record.get("state") in ACTIVE and slurm_run.submitted(record):
        return slurm_run.stop(paths, record, timeout, log=log)
    decision = decide(record)
    temp_dir = (record.get("ray") or {}).get("temp_dir") or ""
    run_id = record.get("id") or paths.id
    if decision.action == "elsewhere":
        print(f"error: cannot stop run {run_id} from here: {decision.reason}", file=log)
        return 2
    if decision.action == "signal":
        owner = record["supervisor"]
        try:
            os.kill(decision.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        except PermissionError:
            print(f"error: cannot stop run {run_id}: it belongs to another user (uid {_owner_uid(owner)}); "
                  f"run `python -m runner stop` as that user (or root)", file=log)
            return 2
        print(f"[runner] stopping run {run_id}: SIGTERM to its runner (pid {decision.pid}); it stops the job, "
              f"then its Ray", file=log, flush=True)
        if not _wait_gone(owner, timeout):
            print(f"[runner] pid {decision.pid} still running after {timeout:.0f}s: SIGKILL (its Ray and job "
                  f"process die with it)", file=log, flush=True)
            try:
                os.kill(decision.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            _wait_gone(owner, 30)
    elif decision.action == "gone":
        print(f"[runner] run {run_id} was {record.get('state')}, but {decision.reason}", file=log, flush=True)
    # Whatever is left of this run (nothing, when its runner cleaned up).
    left = sweep_run(temp_dir, run_id, log=log) if temp_dir else []
    after = load_record(paths)
    if decision.action == "signal" and after.get("state") == "stopped":
        # The runner saw only a SIGTERM; say who sent it.
        after = update_record(paths, {"detail": "stopped by `python -m runner stop`"}) or after
    if after.get("state") in ACTIVE:
        state = "stopped" if decision.action == "signal" or left else "lost"
        detail = ("stopped by `python -m runner stop`" if state == "stopped" else decision.reason)
        if decision.action == "gone" and left:
            detail = f"{decision.reason}; `stop` ended {len(left)} leftover process(es)"
        update_record(paths, {"state": state, "detail": detail, "ended_at": now_iso()}, only_if_state=ACTIVE)
        after = load_record(paths)
    if decision.action == "ended" and not left:
        print(f"run {run_id}: nothing to stop, {decision.reason}", file=log)
        return 0
    remaining = run_processes(temp_dir, run_id) if temp_dir else []
    if remaining:
        print(f"error: run {run_id}: processes still alive after stopping: {remaining}", file=log)
        return 1
    print(f"run {run_id}: {after.get('state')} ({after.get('detail') or ''}); no process of it is left. "
          f"Checkpoint: {(after.get('checkpoint') or {}).get('save')}", file=log)
    return 0


def describe_stop(paths: RunPaths) -> list[str]:
    """--dry-run: what `stop` would do, touching nothing."""
    record = load_record(paths)
    if record.get("state") in ACTIVE and slurm_run.submitted(record):
        return slurm_run.describe_stop(record)
    decision = decide(record)
    temp_dir = (record.get("ray") or {}).get("temp_dir") or ""
    pids = run_processes(temp_dir, record.get("id") or paths.id) if temp_dir else []
    if decision.action == "elsewhere":  # what the real stop says, and all it does
        return [f"would refuse: cannot stop run {record.get('id')} from here: {decision.reason}"]
    lines = [f"run {record.get('id')}: {record.get('state')}; {decision.reason}"]
    if decision.action == "signal":
        lines.append(f"would send SIGTERM to pid {decision.pid} and wait for it to stop the job and its Ray")
    lines.append(f"would then stop the processes of this run still alive (run id in their environment, or "
                 f"{temp_dir}/ in their command line): {pids or 'none now'}")
    return lines
