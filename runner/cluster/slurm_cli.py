"""What Slurm says, and what the runner asks of it: the thin side-effect layer.

Each function runs one Slurm client command and returns parsed data or a
one-line problem; the decisions are made by pure code (runner.cluster.slurm).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from typing import Mapping

from runner.cluster.slurm import Allocation, expand_nodelist, literal_address, parse_one_line_record

TIMEOUT_S = 30.0  # slurmctld answers in well under a second; a hung one must not hang the runner


class SlurmError(Exception):
    """A Slurm command failed or is missing: one line saying which and why."""


def _run(argv: list[str]) -> str:
    if shutil.which(argv[0]) is None:
        raise SlurmError(f"{argv[0]} is not on PATH: run this on a node of the Slurm cluster (a login node), "
                         f"with the Slurm client commands installed")
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=TIMEOUT_S)
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

