"""Ray under Slurm, pure: the allocation a run is inside, and one `srun` that
starts a Ray worker on every other node of it.

What Slurm itself says (scontrol, squeue, ...) is read by
runner.launch.cluster.slurm_cli; this module only plans and parses.

srun hands its environment to the tasks: the Ray token travels that way, and
so do WANDB_API_KEY and HF_TOKEN when set (runner.launch.job_secrets: a variable a
process already has wins over the secrets file, which is not copied to Slurm
nodes). Each task first makes the run's private directory (mode 0700), then
execs `ray start` with its temp dir inside it.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from runner.launch.cluster.head import NO_DRAIN
from runner.launch.cluster.spec import ClusterSpec
from runner.launch.plan import Process


@dataclass(frozen=True)
class Allocation:
    """The Slurm job this runner runs in (the batch script runs on its first node)."""

    job_id: str
    nodes: tuple[str, ...]
    this_node: str
    # This node's NodeAddr as slurmctld knows it (an address or a host name).
    this_node_addr: str | None = None

    @property
    def others(self) -> tuple[str, ...]:
        return tuple(n for n in self.nodes if n != self.this_node)

    def to_record(self) -> dict:
        return {"job_id": self.job_id, "nodes": list(self.nodes), "head_node": self.this_node}


def worker_processes(spec: ClusterSpec, head_node: str) -> list[Process]:
    if not spec.workers:
        return []
    ray_argv = (
        spec.ray, "start", "--block",
        "--address", spec.gcs_address,
        "--num-gpus", str(spec.gpus_per_node),
        "--disable-usage-stats",
        "--temp-dir", spec.slurm_worker_temp_dir,
    )
    # $1 is the directory; the umask stays in a subshell: Ray's own files keep the usual one.
    private = ("bash", "-c", '(umask 077 && mkdir -p "$1") && chmod 700 "$1" && shift && exec "$@"', "slime-worker",
               spec.temp_dir)
    argv = (
        "srun", f"--nodes={len(spec.workers)}", f"--ntasks={len(spec.workers)}", "--ntasks-per-node=1",
        f"--nodelist={','.join(spec.workers)}", f"--exclude={head_node}", "--overlap", "--kill-on-bad-exit=1",
        *private, *ray_argv,
    )
    # srun propagates the environment, so the token travels there, not on argv.
    return [Process(argv, {**spec.auth_env(), **NO_DRAIN, **spec.marker_env()}, purpose=f"Ray workers on {len(spec.workers)} Slurm node(s)")]


def expand_nodelist(nodelist: str, scontrol_output: str) -> list[str]:
    """`scontrol show hostnames $SLURM_JOB_NODELIST` prints one node per line."""
    return [line.strip() for line in scontrol_output.splitlines() if line.strip()] or [nodelist]


def parse_one_line_record(text: str) -> dict[str, str]:
    """One entity of `scontrol show ... -o` (KEY=VALUE words on one line)."""
    out = {}
    for word in text.split():
        key, sep, value = word.partition("=")
        if sep:
            out[key] = value
    return out


def literal_address(addr: str | None) -> str | None:
    """`addr` if it is an IP address (not a host name), else None."""
    if not addr:
        return None
    try:
        return str(ipaddress.ip_address(addr))
    except ValueError:
        return None
