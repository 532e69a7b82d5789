"""Ray workers under Slurm: one `srun` that starts a worker on every other node.

srun hands its environment to the tasks: the Ray token travels that way, and
so do WANDB_API_KEY and HF_TOKEN when set (runner.job_secrets: a variable a
process already has wins over the secrets file, which is not copied to Slurm
nodes). Each task first makes the run's private directory (mode 0700), then
execs `ray start` with its temp dir inside it.
"""

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
