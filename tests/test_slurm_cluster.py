"""The test Slurm cluster itself (tests/slurm_cluster.py): two real slurmd
nodes, n2 in a network namespace with its own address; jobs land on both;
taking it down leaves no daemon, job step, namespace or interface behind."""

import os
import subprocess
import time

import pytest

from tests import netns_host, slurm_cluster

slurm = slurm_cluster.cluster_fixture("slc")


def test_srun_places_one_task_on_each_node_and_n2_sees_only_its_address(slurm):
    r = slurm.run("srun", "-N2", "--ntasks-per-node=1", "--chdir", str(slurm.lab), "--label",
                  "sh", "-c", 'echo "$SLURMD_NODENAME $(ip -4 -o addr show | awk \'{print $4}\' | tr "\\n" " ")"')
    lines = sorted(line.split(": ", 1)[1].split() for line in r.stdout.splitlines())
    assert [line[0] for line in lines] == ["n1", "n2"], r.stdout
    n1, n2 = lines
    assert f"{slurm.host.head_ip}/24" in n1[1:]
    assert n2[1:] == ["127.0.0.1/8", f"{slurm.host.worker_ip}/24"], n2  # its own address, nothing of n1's


def test_sbatch_runs_on_both_nodes_and_reports_the_exit_code(slurm, tmp_path):
    script = tmp_path / "job.sh"
    script.write_text("#!/bin/sh\nsrun --ntasks-per-node=1 sh -c 'echo task on $SLURMD_NODENAME'\nexit 3\n")
    r = slurm.run("sbatch", "-N2", "--wait", "--parsable", f"--output={tmp_path}/%j.out", str(script), check=False)
    assert r.returncode == 3, r.stderr  # sbatch --wait exits with the job's code
    job_id = r.stdout.strip()
    out = (tmp_path / f"{job_id}.out").read_text()
    assert sorted(out.split("\n")[:2]) == ["task on n1", "task on n2"], out
    job = slurm.job(job_id)
    assert job["JobState"] == "FAILED" and job["ExitCode"] == "3:0", job


@pytest.mark.skipif(slurm_cluster.unavailable() is not None, reason=str(slurm_cluster.unavailable()))
def test_taking_the_cluster_down_leaves_nothing(tmp_path):
    """With a job step still running on both nodes, the cluster goes down cleanly."""
    with netns_host.namespace_host("sld") as host:
        with slurm_cluster.slurm_cluster(tmp_path / "lab", host) as cluster:
            job = cluster.run("sbatch", "-N2", "--parsable", f"--chdir={tmp_path}", f"--output={tmp_path}/%j.out",
                              "--wrap", "srun --ntasks-per-node=1 sleep 300").stdout.strip()
            deadline = time.monotonic() + 30
            while len(slurm_cluster.step_daemons(cluster.lab)) < 3:  # the batch step and one step per node
                assert time.monotonic() < deadline, cluster.logs_tail()
                time.sleep(0.2)
            daemons = cluster.daemon_pids()
            steps = slurm_cluster.step_daemons(cluster.lab)
            assert len(daemons) == 4 and job
    assert not [p for p in daemons + steps if _running(p)]
    assert not slurm_cluster.step_daemons(tmp_path / "lab")
    assert not netns_host.leftovers(host)
    sleepers = subprocess.run(["pgrep", "-f", "^sleep 300$"], capture_output=True, text=True).stdout.split()
    assert not [p for p in sleepers if _running(int(p)) and str(tmp_path) in _cwd(int(p))]


def _running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _cwd(pid: int) -> str:
    try:
        return os.readlink(f"/proc/{pid}/cwd")
    except OSError:
        return ""
