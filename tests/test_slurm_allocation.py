"""The runner inside a real Slurm allocation (tests/slurm_cluster.py).

`sbatch -N2` runs `python -m runner train --recipe megatron-multinode` as a
Slurm user's batch script would, with the launch-test entrypoint in place of
slime's train.py (recipe GPU counts made to fit a CPU machine, as in
tests/test_multinode_ssh.py: every node joins with 0 GPUs). The runner reads
the allocation from Slurm, puts the Ray head on n1 (MASTER_ADDR from Slurm's
NodeAddr of n1) and starts the worker on n2 with a real `srun`. The entrypoint
is a Ray driver: it lists the nodes and runs a task on each, which reports
the Slurm node and step it runs in.
"""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from runner.launch.processes import processes_with_marker
from tests import slurm_cluster
from tests.conftest import REPO, RUNNER_ENV, free_port
from tests.test_ray_launch import _alive

pytest.importorskip("ray.job_submission", reason="needs ray[default] (pip install -e '.[test]')")

slurm = slurm_cluster.cluster_fixture("sla")

ENTRY = """\
import os, sys, time
import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy
args = sys.argv[1:]
ray.init()  # the Ray job's own cluster, as slime's train.py joins it
alive = [n for n in ray.nodes() if n["Alive"]]
print("ENTRY nodes", " ".join(sorted(n["NodeManagerAddress"] for n in alive)), flush=True)

@ray.remote(num_cpus=0)
def where():
    return (ray.util.get_node_ip_address(), os.environ.get("SLURMD_NODENAME"), os.environ.get("SLURM_STEP_ID"))

for n in alive:
    ip, node, step = ray.get(where.options(
        scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False)).remote())
    print(f"ENTRY task at {ip} on slurm node {node} step {step}", flush=True)
if "--test-sleep" in args:
    print("ENTRY sleeping", flush=True)
    time.sleep(float(args[args.index("--test-sleep") + 1]))
code = int(args[args.index("--test-exit-code") + 1]) if "--test-exit-code" in args else 0
print("ENTRY exiting with", code, flush=True)
sys.exit(code)
"""


def _submit(slurm, tmp_path: Path, short_tmp: str, *entry_args: str) -> tuple[str, Path, Path]:
    """sbatch -N2 a batch script that runs the runner; (job id, its output file, the runs dir)."""
    entry = tmp_path / "entry.py"
    entry.write_text(ENTRY)
    runs = tmp_path / "runs"
    script = tmp_path / "job.sh"
    script.write_text(f"""#!/bin/bash
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=1
#SBATCH --exclusive
exec {sys.executable} -m runner train --recipe megatron-multinode --test-entrypoint {entry} \\
    --ray-temp-dir {short_tmp} --ray-port {free_port()} --dashboard-port {free_port()} --ready-timeout 120 \\
    --runs-dir {runs} --kernel-cache {tmp_path}/kernels -- {' '.join(entry_args)}
""")
    # The submitting shell's environment reaches the job (sbatch's default --export=ALL), minus
    # whatever a developer's own runner settings would change.
    env = {k: v for k, v in os.environ.items() if k not in RUNNER_ENV and not k.startswith("SLIME_RUNNER_")}
    env.update(slurm.env, PYTHONPATH=str(REPO), PYTHONUNBUFFERED="1", NCCL_NVLS_ENABLE="0",
               SLIME_RUNNER_LOCK=str(tmp_path / "runner.lock"))
    out = tmp_path / "slurm-%j.out"
    done = subprocess.run(
        ["sbatch", "--parsable", f"--output={out}", f"--chdir={REPO}", str(script)],
        env=env, capture_output=True, text=True, check=True)
    job = done.stdout.strip().split(";")[0]
    return job, tmp_path / f"slurm-{job}.out", runs


def _wait(predicate, timeout: float, what: str, slurm=None):  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.3)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}"
                         + (f"\n{slurm.logs_tail()}" if slurm else ""))


def _read(path: Path) -> str:
    return path.read_text(errors="replace") if path.exists() else ""


def _record(runs: Path) -> dict:
    (record,) = runs.glob("*/run.json")
    return json.loads(record.read_text())


def _net_namespace(pid: int) -> str | None:
    try:
        return os.readlink(f"/proc/{pid}/ns/net")
    except OSError:
        return None


@pytest.mark.slow
def test_runner_in_sbatch_puts_head_on_n1_worker_on_n2_and_exits_with_the_job(slurm, tmp_path, short_tmp):
    job, output, runs = _submit(slurm, tmp_path, short_tmp, "--test-exit-code", "3")
    _wait(lambda: job not in slurm.jobs(), 240, f"Slurm job {job} to end", slurm)
    out = _read(output)
    head, worker = slurm.host.head_ip, slurm.host.worker_ip
    # The head on n1, at Slurm's address of n1; the worker on n2, started by srun (step 0 of the job).
    assert "Ray workers on 1 Slurm node(s)" in out and "cluster ready: 2 node(s)" in out, out[-3000:]
    assert f"ENTRY nodes {' '.join(sorted([head, worker]))}" in out, out[-3000:]
    assert f"ENTRY task at {head} on slurm node n1 step None" in out, out[-3000:]  # the batch step
    assert f"ENTRY task at {worker} on slurm node n2 step 0" in out, out[-3000:]  # srun's step
    # The job's exit code is the batch script's, which Slurm reports.
    assert "ENTRY exiting with 3" in out and "job finished with exit code 3" in out
    info = slurm.job(job)
    assert info["JobState"] == "FAILED" and info["ExitCode"] == "3:0", info
    # The worker stopped with its srun step; nothing had to be swept, nothing is left.
    assert "leftover" not in out, out[-3000:]
    assert not processes_with_marker(short_tmp + "/")
    assert not slurm_cluster.step_daemons(slurm.lab)
    # The run directory says where it ran.
    record = _record(runs)
    assert record["slurm"] == {"job_id": job, "nodes": ["n1", "n2"], "head_node": "n1"}, record["slurm"]
    assert record["hosts"]["workers"] == ["n2"] and record["hosts"]["worker_launcher"] == "slurm"
    assert record["hosts"]["master_addr"] == head
    assert record["locations"]["master_addr"] == {"value": head, "source": "Slurm, NodeAddr of n1"}
    assert record["state"] == "failed" and record["exit_code"] == 3


@pytest.mark.slow
def test_scancel_mid_run_leaves_no_ray_process_on_either_node(slurm, tmp_path, short_tmp):
    job, output, runs = _submit(slurm, tmp_path, short_tmp, "--test-sleep", "300")
    _wait(lambda: "ENTRY sleeping" in _read(output), 240, "the job to run", slurm)
    ours = _net_namespace(os.getpid())
    seen = processes_with_marker(short_tmp + "/")
    namespaces = {_net_namespace(p) for p in seen} - {None}
    assert ours in namespaces and len(namespaces) == 2, "Ray processes should run on both nodes (n2: its namespace)"
    slurm.run("scancel", job)
    _wait(lambda: job not in slurm.jobs(), 120, f"Slurm job {job} to end after scancel", slurm)
    _wait(lambda: not [p for p in seen if _alive(p)], 30, "every Ray process of the run to end")
    assert not processes_with_marker(short_tmp + "/")
    assert not slurm_cluster.step_daemons(slurm.lab)
    assert slurm.job(job)["JobState"] == "CANCELLED"
    out = _read(output)
    assert "ENTRY exiting" not in out
    record = _record(runs)
    assert record["state"] == "stopped", record
