"""What Slurm says, and what the runner asks of it: the thin side-effect layer.

Each function runs one Slurm client command (scontrol, sinfo, sbatch,
squeue, sacct, scancel) and returns parsed data or a one-line problem; the
decisions are made by pure code (runner.launch.cluster.slurm and friends).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from dataclasses import dataclass
from typing import Mapping

from runner.launch.cluster.slurm import Allocation, expand_nodelist, literal_address, parse_one_line_record
from runner.launch.cluster.slurm_request import Partition, parse_partitions

TIMEOUT_S = 30.0  # slurmctld answers in well under a second; a hung one must not hang the runner


class SlurmError(Exception):
    """A Slurm command failed or is missing: one line saying which and why."""


def _run(argv: list[str], stdin: str | None = None) -> str:
    if shutil.which(argv[0]) is None:
        raise SlurmError(f"{argv[0]} is not on PATH: run this on a node of the Slurm cluster (a login node), "
                         f"with the Slurm client commands installed")
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=TIMEOUT_S, input=stdin)
    except subprocess.TimeoutExpired:
        raise SlurmError(f"`{' '.join(argv)}` did not answer within {TIMEOUT_S:.0f}s (is slurmctld up?)") from None
    if done.returncode != 0:
        why = (done.stderr.strip() or done.stdout.strip() or f"exit code {done.returncode}").splitlines()[-1]
        raise SlurmError(f"`{' '.join(argv)}` failed: {why}")
    return done.stdout


def read_allocation(environ: Mapping[str, str]) -> Allocation:
    """The allocation this process runs in (SLURM_JOB_NODELIST is set); SlurmError if Slurm cannot say."""
    nodelist = environ["SLURM_JOB_NODELIST"]
    this = environ.get("SLURMD_NODENAME") or os.uname().nodename
    try:
        nodes = expand_nodelist(nodelist, _run(["scontrol", "show", "hostnames", nodelist]))
    except SlurmError as exc:
        raise SlurmError(f"SLURM_JOB_NODELIST is set, but its nodes cannot be listed ({exc}); pass --hostfile "
                         f"instead") from None
    try:
        addr = parse_one_line_record(_run(["scontrol", "show", "node", "-o", this])).get("NodeAddr")
    except SlurmError:
        addr = None  # only a default for MASTER_ADDR: without it, the user gives MASTER_ADDR
    return Allocation(job_id=environ.get("SLURM_JOB_ID", ""), nodes=tuple(nodes), this_node=this, this_node_addr=addr)


def node_address(allocation: Allocation) -> str | None:
    """This node's address on the network Slurm reaches it by: NodeAddr, resolved when it is a
    host name (its first address that is not a loopback one); None when there is none."""
    addr = allocation.this_node_addr
    literal = literal_address(addr)
    if literal or not addr:
        return literal
    try:
        infos = socket.getaddrinfo(addr, None, family=socket.AF_INET, proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError):
        return None
    for info in infos:
        if not info[4][0].startswith("127."):
            return info[4][0]
    return None


def partitions() -> dict[str, Partition]:
    """Every partition of the cluster with its nodes, limits and GPUs per node."""
    return parse_partitions(_run(["scontrol", "show", "partition", "-o"]),
                            _run(["sinfo", "-h", "-N", "-o", "%R|%N|%G"]))


def submit(script: str) -> str:
    """sbatch SCRIPT; the job id."""
    out = _run(["sbatch", "--parsable", script]).strip()
    job_id = out.split(";")[0]  # --parsable: "ID" or "ID;CLUSTER"
    if not job_id.isdigit():
        raise SlurmError(f"sbatch answered {out!r}, not a job id")
    return job_id


@dataclass(frozen=True)
class JobState:
    job_id: str
    state: str  # Slurm's: PENDING, RUNNING, COMPLETING, COMPLETED, FAILED, CANCELLED, TIMEOUT, ...
    reason: str = ""
    nodes: str = ""
    exit_code: str = ""  # "3:0" (code:signal) once ended, when Slurm says
    source: str = "squeue"


def job_state(job_id: str) -> JobState | None:
    """What Slurm says of a job: squeue while slurmctld holds it (pending, running, and ended for
    MinJobAge), its exit code from scontrol; sacct once it is gone. None: Slurm no longer knows it."""
    try:
        line = _run(["squeue", "-h", "--states=all", "-j", job_id, "-o", "%T|%r|%N"]).strip()
    except SlurmError as exc:
        if "Invalid job id" not in str(exc):
            raise
        line = ""
    if line:
        state, reason, nodes = (line.splitlines()[0].split("|") + ["", ""])[:3]
        exit_code = ""
        if state not in ("PENDING", "RUNNING", "CONFIGURING", "COMPLETING", "SUSPENDED"):
            try:
                exit_code = parse_one_line_record(_run(["scontrol", "show", "job", "-o", job_id])).get("ExitCode", "")
            except SlurmError:
                pass
        return JobState(job_id, state, "" if reason == "None" else reason, nodes, exit_code)
    try:
        rows = _run(["sacct", "-n", "-X", "-P", "-j", job_id, "-o", "State,ExitCode,NodeList"]).splitlines()
    except SlurmError:
        return None  # e.g. "Slurm accounting storage is disabled"
    if not rows:
        return None
    state, exit_code, nodes = (rows[0].split("|") + ["", ""])[:3]
    # sacct writes "CANCELLED by 0".
    return JobState(job_id, state.split()[0], "", nodes, exit_code, source="sacct")


def cancel(job_id: str, *, batch_signal: str | None = None) -> None:
    """scancel JOB; with batch_signal, only that signal to the batch script (the runner), which stops
    the job and its Ray itself."""
    argv = ["scancel"]
    if batch_signal:
        argv += ["--batch", f"--signal={batch_signal}"]
    _run([*argv, job_id])


def test_only(script_text: str) -> None:
    """`sbatch --test-only` on the script (from stdin): slurmctld checks partition, account, QOS and limits,
    and submits nothing. SlurmError with its reason."""
    _run(["sbatch", "--test-only"], stdin=script_text)
