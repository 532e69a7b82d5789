"""`train --slurm` against a real Slurm cluster (tests/slurm_cluster.py).

The runner writes the batch script into the run directory and submits it;
on the allocation's first node (n1) the script's own `train` claims the
run, puts the Ray head there and a Ray worker on n2 through srun, and runs
the launch-test entrypoint of tests/test_slurm_allocation.py (a Ray driver
that reports the node and Slurm step of a task on each node). `status`,
`logs` and `stop` follow it from here: squeue, the job's output file,
scancel. Bad Slurm input is one line, exit 2, nothing written or submitted.
"""

import json
import os
import re
import subprocess
from pathlib import Path

import pytest

from runner.launch.processes import processes_with_marker
from tests import slurm_cluster
from tests.conftest import free_port, run_cli
from tests.test_ray_launch import _alive
from tests.test_slurm_allocation import ENTRY, _wait

pytest.importorskip("ray.job_submission", reason="needs ray[default] (pip install -e '.[test]')")

slurm = slurm_cluster.cluster_fixture("sls")


@pytest.fixture
def lab(slurm, tmp_path, short_tmp):
    entry = tmp_path / "entry.py"
    entry.write_text(ENTRY)
    runs = tmp_path / "runs"
    env = {**slurm.env, "PYTHONUNBUFFERED": "1", "NCCL_NVLS_ENABLE": "0",
           "SLIME_RUNNER_LOCK": str(tmp_path / "runner.lock")}

    def train(*extra: str, nodes: str = "2") -> subprocess.CompletedProcess:
        return run_cli("train", "--recipe", "megatron-multinode", "--slurm", "--test-entrypoint", str(entry),
                       "--nodes", nodes, "--ray-temp-dir", short_tmp, "--ray-port", str(free_port()),
                       "--dashboard-port", str(free_port()), "--ready-timeout", "120", "--runs-dir", str(runs),
                       "--kernel-cache", str(tmp_path / "kernels"), *extra, env=env, timeout=120)

    def cli(*args: str) -> subprocess.CompletedProcess:
        return run_cli(*args, "--runs-dir", str(runs), env=env, timeout=300)

    return {"train": train, "cli": cli, "runs": runs, "env": env, "temp": short_tmp}


def _run_dir(runs: Path) -> Path:
    (one,) = [p for p in runs.iterdir() if (p / "run.json").is_file()]
    return one


def _record(run_dir: Path) -> dict:
    return json.loads((run_dir / "run.json").read_text())


def _job_id(stderr: str) -> str:
    return re.search(r"submitted as Slurm job (\d+)", stderr).group(1)


def _read(path: Path) -> str:
    return path.read_text(errors="replace") if path.exists() else ""


def test_dry_run_prints_the_script_and_submits_nothing(slurm, lab):
    r = lab["train"]("--dry-run", "--time", "30", "--", "--test-exit-code", "4")
    assert r.returncode == 0, r.stderr
    assert "#SBATCH --nodes=2\n#SBATCH --ntasks-per-node=1\n#SBATCH --exclusive\n#SBATCH --time=30\n" in r.stdout
    assert "--gres" not in r.stdout  # a launch test asks for no GPUs
    command = r.stdout.split("\nexec ", 1)[1].splitlines()[0]
    assert " -m runner train --recipe megatron-multinode " in command and "--prepared-run " in command
    assert command.endswith("-- --test-exit-code 4") and "--slurm" not in command and "--time" not in command
    assert "would write the above to" in r.stdout and "error:" not in r.stdout
    assert not lab["runs"].exists() and slurm.jobs() == []
    # The recipe itself: its nodes and GPUs per node; the cluster's two nodes are too few, said in the listing.
    r = run_cli("train", "--recipe", "megatron-multinode", "--slurm", "--dry-run", "--runs-dir", str(lab["runs"]),
                env=lab["env"])
    assert r.returncode == 0, r.stderr
    assert "#SBATCH --nodes=4\n" in r.stdout and "#SBATCH --gres=gpu:8\n" in r.stdout
    assert ("error: the default partition debug has 2 node(s); megatron-multinode needs 4: pass a partition with at "
            "least 4 nodes (sinfo -s shows their sizes)") in r.stdout.splitlines()
    assert not lab["runs"].exists() and slurm.jobs() == []


def _earlier_run(runs: Path) -> None:
    """A finished run of the recipe whose job.log holds slime's perf lines, 60 s apart."""
    earlier = runs / "megatron-multinode-20261201-100000-beef"
    earlier.mkdir()
    (earlier / "run.json").write_text(json.dumps({"id": earlier.name, "recipe": "megatron-multinode",
                                                  "state": "succeeded", "request": {"recipe": "megatron-multinode"}}))
    (earlier / "job.log").write_text("".join(
        f"(RolloutManager pid=4242) [2026-12-01 10:{i:02d}:00,100] rollout.py:608 - perf {i}: "
        f"{{'perf/rollout_time': 55.0}}\n" for i in range(4)))


@pytest.mark.parametrize(("nodes", "args", "error"), [
    ("2", ("--partition", "nosuch"),
     "--partition nosuch: no such partition on this cluster (sinfo lists: debug, short); pass one of those"),
    ("3", (), "the default partition debug has 2 node(s); megatron-multinode needs 3: pass a partition with at least "
              "3 nodes (sinfo -s shows their sizes)"),
    ("1", ("--partition", "short", "--time", "20"),
     "--time 20 is above --partition short's limit of 00:10:00: Slurm would never start the job; ask for at most "
     "that"),
    ("2", ("--time", "30", "--set", "num-rollout=100"),
     "--time 30 (00:30:00) is below the expected duration of megatron-multinode, 01:40:00 (100 rollouts at 60.0 s "
     "per rollout, measured by run megatron-multinode-20261201-100000-beef over its rollouts 0..3 (slime's `perf N` "
     "lines in its job.log)): give --time at least that, or fewer rollouts (--set num-rollout=N)"),
    ("2", ("--time", "1h"), "--time '1h' is not a Slurm time limit; write MINUTES, HH:MM:SS or DAYS-HH:MM:SS (e.g. "
                            "90, 12:00:00, 2-00:00:00)"),
])
def test_bad_slurm_input_is_one_line_exit_2_and_nothing_is_written_or_submitted(slurm, lab, nodes, args, error):
    lab["runs"].mkdir()
    if "num-rollout=100" in args:  # the expected duration needs an earlier run that shows its pace
        _earlier_run(lab["runs"])
    before = sorted(p.name for p in lab["runs"].iterdir())
    r = lab["train"](*args, nodes=nodes)
    assert r.returncode == 2, r.stderr
    assert [line for line in r.stderr.splitlines() if line.startswith("error:")] == [f"error: {error}"]
    assert sorted(p.name for p in lab["runs"].iterdir()) == before and slurm.jobs() == []


@pytest.mark.slow
def test_a_submitted_run_runs_on_both_nodes_and_status_and_logs_follow_it(slurm, lab):
    r = lab["train"]("--", "--test-exit-code", "4")
    assert r.returncode == 0, r.stderr
    job = _job_id(r.stderr)
    run_dir = _run_dir(lab["runs"])
    script = (run_dir / "sbatch.sh").read_text()
    assert "#SBATCH --nodes=2\n" in script and f"--prepared-run {run_dir}" in script
    status = lab["cli"]("status", run_dir.name)
    assert status.returncode == 0 and f"Slurm:      job {job}" in status.stdout, status.stdout
    _wait(lambda: job not in slurm.jobs(), 240, f"Slurm job {job} to end", slurm)
    record = _record(run_dir)
    assert record["state"] == "failed" and record["exit_code"] == 4, record
    assert record["slurm"]["job_id"] == job and record["slurm"]["nodes"] == ["n1", "n2"]
    assert record["slurm"]["script"] == str(run_dir / "sbatch.sh")
    assert record["logs"]["runner"] == str(run_dir / f"slurm-{job}.out")
    assert slurm.job(job)["ExitCode"] == "4:0"
    logs = lab["cli"]("logs", run_dir.name)
    head, worker = slurm.host.head_ip, slurm.host.worker_ip
    assert f"ENTRY task at {head} on slurm node n1 step None" in logs.stdout, logs.stdout[-2000:]
    assert f"ENTRY task at {worker} on slurm node n2 step 0" in logs.stdout
    runner = lab["cli"]("logs", "--runner", run_dir.name)
    assert "[runner] Ray workers on 1 Slurm node(s)" in runner.stdout and "job finished with exit code 4" in runner.stdout
    assert "leftover" not in runner.stdout
    status = lab["cli"]("status", run_dir.name)
    assert f"run {run_dir.name}: failed" in status.stdout and "exit code 4" in status.stdout, status.stdout
    assert not processes_with_marker(lab["temp"] + "/") and not slurm_cluster.step_daemons(slurm.lab)


@pytest.mark.slow
def test_stop_of_a_running_submitted_run_goes_through_slurm_and_leaves_nothing(slurm, lab):
    r = lab["train"]("--", "--test-sleep", "300")
    assert r.returncode == 0, r.stderr
    job = _job_id(r.stderr)
    run_dir = _run_dir(lab["runs"])
    _wait(lambda: "ENTRY sleeping" in _read(run_dir / "job.log"), 240, "the job to run", slurm)
    status = lab["cli"]("status")  # every active run
    assert f"run {run_dir.name}: running" in status.stdout, status.stdout
    seen = processes_with_marker(lab["temp"] + "/")
    assert len({os.readlink(f"/proc/{p}/ns/net") for p in seen if _alive(p)}) == 2  # Ray on both nodes
    dry = lab["cli"]("stop", "--dry-run", run_dir.name)
    assert f"scancel --batch --signal=TERM {job}" in dry.stdout and job in slurm.jobs()
    stop = lab["cli"]("stop", run_dir.name)
    assert stop.returncode == 0, stop.stderr
    assert job not in slurm.jobs()
    record = _record(run_dir)
    assert record["state"] == "stopped", record
    assert record["detail"] == "stopped by `python -m runner stop` (through Slurm)"
    # The runner stopped the job through Ray, then its Ray, before Slurm ended the job.
    output = _read(run_dir / f"slurm-{job}.out")
    assert f"job {record['id']} is STOPPED" in output or "stopping job" in output, output[-2000:]
    assert "ENTRY exiting" not in _read(run_dir / "job.log")
    _wait(lambda: not [p for p in seen if _alive(p)], 30, "every Ray process of the run to end")
    assert not processes_with_marker(lab["temp"] + "/") and not slurm_cluster.step_daemons(slurm.lab)


@pytest.mark.slow
def test_a_queued_run_is_stopped_by_scancel_and_its_script_then_refuses_to_start(slurm, lab, tmp_path):
    busy = slurm.run("sbatch", "--parsable", "-N2", "--exclusive", f"--output={tmp_path}/busy.out",
                     f"--chdir={tmp_path}", "--wrap", "sleep 300").stdout.strip()
    try:
        first, second = lab["train"](), lab["train"]()
        assert first.returncode == 0 and second.returncode == 0, first.stderr + second.stderr
        a, b = sorted((_record(p)["slurm"]["job_id"], p) for p in lab["runs"].iterdir())
        status = lab["cli"]("status")
        assert f"run {a[1].name}: queued (Slurm job {a[0]} PENDING" in status.stdout, status.stdout
        # The user cancels one job with Slurm's own scancel: status says so from Slurm.
        slurm.run("scancel", a[0])
        _wait(lambda: a[0] not in slurm.jobs(), 30, "scancel")
        status = lab["cli"]("status", a[1].name)
        assert f"run {a[1].name}: stopped (Slurm job {a[0]} ended CANCELLED" in status.stdout, status.stdout
        # The other through the runner: cancelled at once, recorded.
        stop = lab["cli"]("stop", b[1].name)
        assert stop.returncode == 0 and f"Slurm job {b[0]} was PENDING: cancelled" in stop.stderr, stop.stderr
        assert b[0] not in slurm.jobs()
        record = _record(b[1])
        assert record["state"] == "stopped" and "while queued" in record["detail"], record
        assert not (b[1] / "job.log").exists()
    finally:
        slurm.run("scancel", busy, check=False)
    # Its batch script, run anyway, claims nothing and starts nothing.
    ran = subprocess.run(["bash", str(b[1] / "sbatch.sh")], capture_output=True, text=True, timeout=120,
                         env={**os.environ, **lab["env"]})
    assert ran.returncode == 2, ran.stderr
    assert f"error: run {b[1].name} is stopped, not queued" in ran.stderr
    assert _record(b[1])["state"] == "stopped" and not processes_with_marker(lab["temp"] + "/")


def test_slurm_itself_refuses_what_the_runner_does_not_check(slurm, tmp_path):
    """sbatch --test-only (the last check before submitting) returns slurmctld's reason, submits nothing."""
    from runner.launch.cluster import slurm_cli

    script = "#!/bin/bash\n#SBATCH --nodes=1\n#SBATCH --partition=debug\n#SBATCH --mem=999999999\ntrue\n"
    env = os.environ.copy()
    os.environ.update(slurm.env)
    try:
        with pytest.raises(slurm_cli.SlurmError) as exc:
            slurm_cli.test_only(script)
        slurm_cli.test_only(script.replace("#SBATCH --mem=999999999\n", ""))
    finally:
        os.environ.clear()
        os.environ.update(env)
    assert str(exc.value) == ("`sbatch --test-only` failed: allocation failure: Requested node configuration is not "
                              "available")
    assert slurm.jobs() == []


def test_a_run_the_batch_jobs_own_preflight_refuses_is_recorded_as_failed_with_why(slurm, lab):
    """What only the allocation's node can tell (here: the Ray port in use on n1) is checked there:
    the batch job exits 2 and run.json says why; nothing started."""
    import socket

    with socket.socket() as busy:
        busy.bind((slurm.host.head_ip, 0))
        busy.listen()
        port = busy.getsockname()[1]
        r = lab["train"]("--ray-port", str(port))
        assert r.returncode == 0, r.stderr  # the login node cannot know
        job = _job_id(r.stderr)
        _wait(lambda: job not in slurm.jobs(), 120, f"Slurm job {job} to end", slurm)
    run_dir = _run_dir(lab["runs"])
    record = _record(run_dir)
    assert record["state"] == "failed" and record["exit_code"] == 2, record
    assert record["detail"].startswith("refused on the allocation's first node before starting: port "
                                       f"{port}"), record["detail"]
    assert slurm.job(job)["ExitCode"] == "2:0"
    status = lab["cli"]("status", run_dir.name)
    assert f"run {run_dir.name}: failed" in status.stdout, status.stdout
    assert not (run_dir / "job.log").exists() and not processes_with_marker(lab["temp"] + "/")
