"""Ray workers under Slurm: one `srun` that starts a worker on every other node."""

from __future__ import annotations

from runner.cluster.spec import ClusterSpec
from runner.cluster.head import NO_DRAIN
from runner.plan import Process


def worker_processes(spec: ClusterSpec, head_node: str) -> list[Process]:
    if not spec.workers:
        return []
    ray_argv = (
        spec.ray, "start", "--block",
        "--address", spec.gcs_address,
        "--num-gpus", str(spec.gpus_per_node),
        "--disable-usage-stats",
        "--temp-dir", f"{spec.temp_dir}/worker",
    )
    argv = (
        "srun", f"--nodes={len(spec.workers)}", f"--ntasks={len(spec.workers)}", "--ntasks-per-node=1",
        f"--nodelist={','.join(spec.workers)}", f"--exclude={head_node}", "--overlap", "--kill-on-bad-exit=1",
        *ray_argv,
    )
    # srun propagates the environment, so the token travels there, not on argv.
    return [Process(argv, {**spec.auth_env(), **NO_DRAIN, **spec.marker_env()}, purpose=f"Ray workers on {len(spec.workers)} Slurm node(s)")]


def expand_nodelist(nodelist: str, scontrol_output: str) -> list[str]:
    """`scontrol show hostnames $SLURM_JOB_NODELIST` prints one node per line."""
    return [line.strip() for line in scontrol_output.splitlines() if line.strip()] or [nodelist]
