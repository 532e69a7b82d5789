"""A run that Slurm owns: what run.json says of it, and what Slurm says.

`train --slurm` (runner.commands.train_slurm) makes the run directory,
writes run.json in state "queued" with the Slurm job (its id, the batch
script, the job's output file) and submits the script. On the allocation's
first node the script runs `train --prepared-run DIR`, which claims that
run (queued -> starting; only once) and runs it as a foreground run there.
A run started by hand inside an allocation records its Slurm job too.

Whenever the record alone cannot tell (the run's runner lives on another
node, or has not started yet), Slurm is asked: squeue while slurmctld knows
the job, sacct after. `stop` of a submitted run goes through Slurm as well:
SIGTERM to the batch script (the runner: it stops the job, then its Ray,
and records "stopped"), then scancel if it does not end in time.
"""

from __future__ import annotations

import sys
import time
from dataclasses import replace
from pathlib import Path

from runner.launch.cluster import slurm_cli
from runner.launch.cluster.slurm_cli import JobState, SlurmError
from runner.runs.layout import RunPaths
from runner.runs.record import ACTIVE, load_record, now_iso, update_record
from runner.runs.setup import RunSetup

WAITING = ("PENDING", "CONFIGURING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "RESV_DEL_HOLD", "SUSPENDED",
           "STOPPED")
RUNNING = ("RUNNING", "COMPLETING", "SIGNALING", "STAGE_OUT", "RESIZING")


def job_id(record: dict) -> str | None:
    return (record.get("slurm") or {}).get("job_id") or None


def submitted(record: dict) -> bool:
    """Submitted by `train --slurm` (the runner wrote the batch script): `stop` may scancel the job."""
    return bool((record.get("slurm") or {}).get("script")) and job_id(record) is not None


# ---- the run directory `train --slurm` prepared

def adopt(setup: RunSetup, run_dir: str) -> RunSetup:
    """This invocation runs into the prepared run directory instead of a new one."""
    paths = RunPaths(Path(run_dir).resolve())
    folder = setup.checkpoint_dir if setup.resumed_from else str(paths.checkpoints)
    return replace(setup, run_id=paths.id, paths=paths, checkpoint_dir=folder, prepared=True)


def queued_record(record: dict, slurm: dict, output: str) -> dict:
    """The record `train --slurm` writes before submitting: no runner yet, Slurm's output as its log."""
    return {**record, "state": "queued", "supervisor": None, "slurm": slurm,
            "logs": {**record.get("logs", {}), "runner": output}}


def claim(paths: RunPaths, record: dict) -> str | None:
    """Merge the batch script's record into the queued one; a problem line if the run is no longer queued."""
    changes = dict(record)
    if changes.get("slurm") is None:
        changes.pop("slurm", None)
    changes["logs"] = {k: v for k, v in (changes.get("logs") or {}).items() if v is not None}
    try:
        done = update_record(paths, changes, only_if_state=("queued",))
    except (OSError, ValueError) as exc:
        return f"cannot take over the prepared run {paths.dir}: {exc}"
    if done is None:
        state = load_record(paths).get("state")
        return (f"run {paths.id} is {state}, not queued: it was stopped (or already ran) before this Slurm job "
                f"started; nothing started")
    return None


def mark_refused(run_dir: Path, reason: str | None) -> None:
    """The batch job's `train` refused to start the queued run (its preflight there, exit 2): record why."""
    paths = RunPaths(run_dir)
    why = reason or "see the job's output"
    try:
        update_record(paths, {"state": "failed", "exit_code": 2, "ended_at": now_iso(),
                              "detail": f"refused on the allocation's first node before starting: {why}"},
                      only_if_state=("queued",))
    except (OSError, ValueError):
        pass  # no run.json to update: the message on stderr (the job's output) is all there is


# ---- its state

def state_from_slurm(record: dict, job: JobState | None, live: bool | None, error: str = "") -> tuple[str, str]:
    """(state, note) of an active run whose runner cannot be seen alive from here. Pure."""
    recorded = record.get("state") or "unknown"
    jid = job_id(record)
    if error:
        return recorded, f"cannot ask Slurm about job {jid}: {error}"
    if job is None:
        return "lost", (f"Slurm no longer knows job {jid} (ended long ago, and no accounting to ask), and the run "
                        f"recorded no end")
    where = f" on {job.nodes}" if job.nodes and job.nodes != "(null)" else ""
    if job.state in WAITING:
        return "queued", f"Slurm job {jid} {job.state}" + (f" ({job.reason})" if job.reason else "")
    if job.state in RUNNING:
        state = "starting" if recorded == "queued" else recorded
        return state, f"Slurm job {jid} {job.state}{where}"
    ended = f"Slurm job {jid} ended {job.state}" + (f", exit code {job.exit_code}" if job.exit_code else "")
    if job.state == "CANCELLED":
        return "stopped", f"{ended} before the run recorded an end"
    if job.state == "COMPLETED":
        return "lost", f"{ended}, yet the run recorded no end"
    return "failed", f"{ended} before the run recorded an end (see the job's output: {_output(record)})"


def _output(record: dict) -> str:
    return (record.get("logs") or {}).get("runner") or (record.get("slurm") or {}).get("output") or "?"


def effective(record: dict, live: bool | None) -> tuple[str, str]:
    try:
        job = slurm_cli.job_state(job_id(record) or "")
    except SlurmError as exc:
        return state_from_slurm(record, None, live, error=str(exc))
    return state_from_slurm(record, job, live)


# ---- stop

def stop(paths: RunPaths, record: dict, timeout: float, log=sys.stderr) -> int:  # noqa: ANN001
    """Stop a run `train --slurm` submitted: SIGTERM to its batch script (the runner), scancel after
    `timeout`; a job still queued is cancelled at once."""
    jid = job_id(record) or ""
    run_id = record.get("id") or paths.id
    try:
        job = slurm_cli.job_state(jid)
    except SlurmError as exc:
        print(f"error: cannot stop run {run_id}: {exc}", file=log)
        return 2
    if job is not None and job.state in WAITING:
        slurm_cli.cancel(jid)
        print(f"[runner] run {run_id}: Slurm job {jid} was {job.state}: cancelled (scancel)", file=log, flush=True)
        how = "stopped by `python -m runner stop` while queued (scancel)"
    elif job is not None and job.state in RUNNING:
        slurm_cli.cancel(jid, batch_signal="TERM")
        print(f"[runner] stopping run {run_id}: SIGTERM to Slurm job {jid}'s batch script (the runner); it stops "
              f"the job, then its Ray", file=log, flush=True)
        if not _wait_ended(jid, timeout):
            print(f"[runner] Slurm job {jid} still running after {timeout:.0f}s: scancel (Slurm stops every process "
                  f"of the job)", file=log, flush=True)
            slurm_cli.cancel(jid)
            if not _wait_ended(jid, 120):
                print(f"error: run {run_id}: Slurm job {jid} has not ended after scancel", file=log)
                return 1
        how = "stopped by `python -m runner stop` (through Slurm)"
    else:
        how = ""
    after = load_record(paths)
    if after.get("state") in ACTIVE:
        if how:
            changes = {"state": "stopped", "detail": how, "ended_at": now_iso()}
        else:
            state, note = state_from_slurm(after, job, None)
            changes = {"state": state, "detail": note, "ended_at": now_iso()}
        update_record(paths, changes, only_if_state=ACTIVE)
    elif after.get("state") == "stopped" and how:
        update_record(paths, {"detail": how})  # the runner saw only a SIGTERM: say who sent it
    after = load_record(paths)
    if not how:
        print(f"run {run_id}: nothing to stop, Slurm job {jid} "
              f"{'is unknown to Slurm' if job is None else 'ended ' + job.state}; recorded {after.get('state')}",
              file=log)
        return 0
    print(f"run {run_id}: {after.get('state')} ({after.get('detail') or ''}). Checkpoint: "
          f"{(after.get('checkpoint') or {}).get('save')}", file=log)
    return 0


def _wait_ended(jid: str, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        try:
            job = slurm_cli.job_state(jid)
        except SlurmError:
            job = None
        if job is None or job.state not in RUNNING + WAITING:
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(1.0)


def describe_stop(record: dict) -> list[str]:
    jid = job_id(record)
    try:
        job = slurm_cli.job_state(jid or "")
    except SlurmError as exc:
        return [f"would refuse: cannot ask Slurm about job {jid}: {exc}"]
    lines = [f"run {record.get('id')}: {record.get('state')}; Slurm job {jid} "
             f"{'unknown to Slurm' if job is None else job.state}"]
    if job is not None and job.state in WAITING:
        lines.append(f"would cancel it: scancel {jid}")
    elif job is not None and job.state in RUNNING:
        lines.append(f"would send SIGTERM to its batch script (scancel --batch --signal=TERM {jid}): the runner "
                     f"stops the job, then its Ray; after --timeout, scancel {jid}")
    else:
        lines.append("nothing to stop; would record how the run ended")
    return lines
