"""`train --slurm`'s pure parts, without a cluster: Slurm's time syntax, the
partition facts and the problems found in them, the batch script's
rendering, the batch script's own `train` command (parsed back by the
runner's real parser), a run's pace from slime's log lines, and the state of a
run in a Slurm job. tests/test_slurm_submit.py runs them against the real
Slurm daemons."""

import argparse
import subprocess

import pytest

from runner.commands.train_slurm import SUBMISSION_ONLY, batch_command
from runner.launch.cluster.sbatch import BatchScript, Environment, UnsafeValue, render, sbatch_options
from runner.launch.cluster.slurm_cli import JobState
from runner.launch.cluster.slurm_request import (
    Expectation, SlurmRequest, format_duration, gpus_of_gres, parse_partitions, parse_time, request_problems)
from runner.runs.pace import pace_of_lines
from runner.runs.slurm_run import state_from_slurm


@pytest.mark.parametrize(("text", "seconds"), [
    ("90", 5400), ("30:00", 1800), ("12:00:00", 43200), ("2-00", 172800), ("1-12:30", 131400),
    ("2-00:00:30", 172830), (" 45 ", 2700),
])
def test_slurm_time_limits_are_read_as_sbatch_reads_them(text, seconds):
    assert parse_time(text) == seconds


@pytest.mark.parametrize("text", ["", "1h", "UNLIMITED", "1:2:3:4", "-5", "0", "0:00:00", "2-"])
def test_a_time_limit_slurm_does_not_take_is_refused_with_the_forms_it_does(text):
    with pytest.raises(ValueError) as exc:
        parse_time(text)
    assert repr(text) in str(exc.value)


def test_durations_print_in_sbatch_syntax():
    assert format_duration(5400) == "01:30:00" and format_duration(2 * 86400 + 61) == "2-00:01:01"


@pytest.mark.parametrize(("gres", "gpus"), [
    ("(null)", 0), ("gpu:8", 8), ("gpu:h200:8(S:0-1)", 8), ("gpu:a100:4,nic:1", 4), ("gpu:a:2,gpu:b:2", 4),
    ("gpu:h100:8(S:0-1),shard:h100:64(S:0-1)", 8),
])
def test_gpus_per_node_come_from_the_gres_sinfo_prints(gres, gpus):
    assert gpus_of_gres(gres) == gpus


# What `scontrol show partition -o` and `sinfo -h -N -o '%R|%N|%G'` print (Slurm 22.05; fields trimmed).
PARTITIONS = """\
PartitionName=gpu AllowGroups=ALL Default=YES DefaultTime=NONE MaxNodes=UNLIMITED MaxTime=2-00:00:00 Nodes=g[1-4] State=UP TotalNodes=4
PartitionName=small Default=NO DefaultTime=01:00:00 MaxTime=04:00:00 Nodes=g[5-6] State=UP TotalNodes=2
PartitionName=cpu Default=NO DefaultTime=NONE MaxTime=UNLIMITED Nodes=c[1-8] State=UP TotalNodes=8
PartitionName=old Default=NO MaxTime=UNLIMITED Nodes=o[1-4] State=DRAIN TotalNodes=4
"""
NODES = "\n".join(
    [f"gpu|g{i}|gpu:h200:8(S:0-1)" for i in (1, 2, 3)] + ["gpu|g4|gpu:h200:4(S:0)"]
    + [f"small|g{i}|gpu:8" for i in (5, 6)] + [f"cpu|c{i}|(null)" for i in range(1, 9)]
    + [f"old|o{i}|gpu:8" for i in range(1, 5)])


def _problems(expectation=None, **request):
    request = {"nodes": 4, "gpus_per_node": 8, **request}
    return request_problems(SlurmRequest(**request), parse_partitions(PARTITIONS, NODES), "megatron-multinode",
                            expectation)


def test_partition_facts_are_read_from_scontrol_and_sinfo():
    parts = parse_partitions(PARTITIONS, NODES)
    assert parts["gpu"].default and parts["gpu"].nodes == ("g1", "g2", "g3", "g4")
    assert parts["gpu"].gpus == {"g1": 8, "g2": 8, "g3": 8, "g4": 4}
    assert parts["gpu"].max_time_s == 172800 and parts["gpu"].default_time_s is None
    assert parts["small"].default_time_s == 3600 and parts["cpu"].max_time_s is None
    assert parts["old"].state == "DRAIN"


@pytest.mark.parametrize(("request_", "expected"), [
    ({"partition": "gpux"}, ["--partition gpux: no such partition on this cluster (sinfo lists: cpu, gpu, old, "
                             "small); pass one of those"]),
    ({"partition": "small"}, ["--partition small has 2 node(s); megatron-multinode needs 4: pass a partition with "
                              "at least 4 nodes (sinfo -s shows their sizes)"]),
    ({"partition": "cpu"}, ["--partition cpu has 0 node(s) with 8 GPUs (gres; at most 0 per node there); "
                            "megatron-multinode needs 4 such nodes: pass a GPU partition"]),
    ({}, ["the default partition gpu has 3 node(s) with 8 GPUs (gres; at most 8 per node there); "
          "megatron-multinode needs 4 such nodes: pass a GPU partition"]),
    ({"partition": "old", "time_limit": "1:00:00"}, ["--partition old is DRAIN: jobs there do not start; pass another "
                                                     "--partition (sinfo lists: cpu, gpu, old, small)"]),
    ({"partition": "cpu", "gpus_per_node": 0, "time_limit": "3-00"}, []),  # a launch test: no GPUs asked
    ({"partition": "old", "gpus_per_node": 8, "time_limit": "1h"}, [
        "--partition old is DRAIN: jobs there do not start; pass another --partition (sinfo lists: cpu, gpu, old, "
        "small)",
        "--time '1h' is not a Slurm time limit; write MINUTES, HH:MM:SS or DAYS-HH:MM:SS (e.g. 90, 12:00:00, "
        "2-00:00:00)"]),
    ({"partition": "cpu", "gpus_per_node": 0, "nodes": 2, "time_limit": "90"}, []),
])
def test_what_a_run_asks_of_the_cluster_is_checked_one_line_each(request_, expected):
    assert _problems(**request_) == expected


def test_a_time_limit_above_the_partition_limit_or_below_the_expected_duration_is_refused():
    assert _problems(partition="cpu", gpus_per_node=0, time_limit="3-00") == []
    over = _problems(partition="small", nodes=2, time_limit="5:00:00")
    assert over == ["--time 5:00:00 is above --partition small's limit of 04:00:00: Slurm would never start the "
                    "job; ask for at most that"]
    expect = Expectation(6000, "100 rollouts at 60.0 s per rollout, measured by run R")
    short = _problems(expect, partition="small", nodes=2, time_limit="90")
    assert short == ["--time 90 (01:30:00) is below the expected duration of megatron-multinode, 01:40:00 (100 "
                     "rollouts at 60.0 s per rollout, measured by run R): give --time at least that, or fewer "
                     "rollouts (--set num-rollout=N)"]
    # Without --time, the partition's default limit is the job's.
    assert _problems(expect, partition="small", nodes=2) == [
        "--partition small's default time limit (01:00:00) is below the expected duration of megatron-multinode, "
        "01:40:00 (100 rollouts at 60.0 s per rollout, measured by run R): give --time at least that, or fewer "
        "rollouts (--set num-rollout=N)"]
    assert _problems(expect, partition="small", nodes=2, time_limit="2:00:00") == []


def _script(**over):
    fields = {"run_id": "megatron-multinode-20261205-010203-abcd",
              "request": SlurmRequest(nodes=4, gpus_per_node=8, partition="gpu", account="proj", time_limit="2-00"),
              "output": "/runs/r/slurm-%j.out", "chdir": "/home/u/work", "environment": Environment(),
              "command": ("/env/bin/python", "-m", "runner", "train", "--recipe", "megatron-multinode",
                          "--set", "lr=2e-6 x")}
    fields.update(over)
    return BatchScript(**fields)


def test_the_batch_script_asks_for_the_recipe_nodes_and_gpus_and_runs_the_runner(tmp_path):
    text = render(_script())
    sbatch = [line for line in text.splitlines() if line.startswith("#SBATCH")]
    assert sbatch == ["#SBATCH --job-name=megatron-multinode-20261205-010203-abcd", "#SBATCH --nodes=4",
                      "#SBATCH --ntasks-per-node=1", "#SBATCH --exclusive", "#SBATCH --gres=gpu:8",
                      "#SBATCH --partition=gpu", "#SBATCH --account=proj", "#SBATCH --time=2-00",
                      "#SBATCH --output=/runs/r/slurm-%j.out", "#SBATCH --chdir=/home/u/work",
                      "#SBATCH --signal=B:TERM@120", "#SBATCH --no-requeue"]
    # sbatch stops reading options at the first command: they all come before it.
    first_command = next(i for i, line in enumerate(text.splitlines()) if line and not line.startswith("#"))
    assert all(text.splitlines().index(line) < first_command for line in sbatch)
    assert "\nunset MASTER_ADDR\n" in text
    assert text.rstrip().endswith("exec /env/bin/python -m runner train --recipe megatron-multinode --set 'lr=2e-6 x'")
    path = tmp_path / "s.sh"
    path.write_text(text)
    assert subprocess.run(["bash", "-n", str(path)]).returncode == 0


def test_a_launch_test_asks_for_no_gpus_and_the_environment_comes_from_the_flake_or_this_python():
    req = SlurmRequest(nodes=2, gpus_per_node=0)
    names = [name for name, _ in sbatch_options(_script(request=req))]
    assert "--gres" not in names and "--partition" not in names and "--time" not in names
    flake = render(_script(environment=Environment(script="/nix/store/abc-slime-environment.sh")))
    assert "\nsource /nix/store/abc-slime-environment.sh\n" in flake and "PYTHONPATH" not in flake
    here = render(_script(environment=Environment(pythonpath="/src/my runner")))
    assert "\nexport PYTHONPATH='/src/my runner'\n" in here


def test_values_sbatch_cannot_read_are_refused_and_spaces_are_quoted():
    with pytest.raises(UnsafeValue, match="--partition 'gpu\\\\nx'"):
        render(_script(request=SlurmRequest(nodes=1, gpus_per_node=0, partition="gpu\nx")))
    text = render(_script(output="/runs/my run/slurm-%j.out"))
    assert '#SBATCH --output="/runs/my run/slurm-%j.out"' in text


def test_the_batch_scripts_train_command_parses_back_to_the_same_options():
    """Every option of `train` given at submission reaches the batch script's `train`, except the
    submission's own; the locations are the ones resolved at submission. Parsed by the real parser."""
    from runner.cli import build_parser

    parser = build_parser()
    train = parser.subcommand_parsers["train"]
    given = ["train", "--recipe", "megatron-multinode", "--set", "lr=2e-6", "--set", "sglang-cuda-graph-bs=1 2",
             "--unset", "colocate", "--low-memory", "--force", "--verbose", "--ray-port", "7000",
             "--ray-auth", "token", "--ready-timeout", "55", "--kernel-cache", "k", "--slurm", "--partition", "gpu",
             "--time", "90", "--qos", "high", "--account", "a", "--dry-run", "--", "--num-rollout", "5"]
    args = parser.parse_args(given)
    locations = {"base_folder": "/b", "runs_dir": "/b/runs", "slime_dir": "/s"}
    argv = batch_command(args, "/b/runs/R", locations, train)
    assert argv[1:4] == ("-m", "runner", "train")
    again = parser.parse_args(list(argv[3:]))
    for action in train._actions:
        dest = action.dest
        if isinstance(action, argparse._HelpAction) or dest in SUBMISSION_ONLY or dest in locations:
            continue
        assert getattr(again, dest) == getattr(args, dest), dest
    assert (again.base_folder, again.runs_dir, again.slime_dir, again.megatron_dir) == ("/b", "/b/runs", "/s", None)
    assert again.prepared_run == "/b/runs/R" and not again.slurm and again.partition is None and not again.dry_run


SLIME_LOG = """\
(RolloutManager pid=4242) [2026-12-01 10:00:00,120] rollout.py:608 - perf 7: {'perf/rollout_time': 55.1}
(MegatronTrainRayActor pid=4300) [2026-12-01 10:00:40,001] train_metric_utils.py:44 - perf 7: {'perf/step_time': 30.0}
\x1b[36m(RolloutManager pid=4242)\x1b[0m [2026-12-01 10:01:00,500] rollout.py:608 - perf 8: {'perf/rollout_time': nan}
(MegatronTrainRayActor pid=4300) [2026-12-01 10:01:40,000] train_metric_utils.py:44 - perf 8: {'perf/step_time': 31.0}
(RolloutManager pid=4242) [2026-12-01 10:02:00,900] rollout.py:608 - perf 9: {'perf/rollout_time': np.float64(54.0)}
(RolloutManager pid=4242) Timer train start
"""


def test_a_runs_pace_is_read_from_slimes_perf_lines():
    pace = pace_of_lines(SLIME_LOG.splitlines(), "run-1")
    assert (pace.first, pace.last, pace.seconds_per_rollout) == (7, 9, 60.0)
    assert "60.0 s per rollout, measured by run run-1 over its rollouts 7..9" in pace.describe()
    assert pace_of_lines(SLIME_LOG.splitlines()[:2], "run-1") is None  # one rollout: no pace
    assert pace_of_lines(["[2026-12-01 10:00:00] x.py:1 - step 3: {}"], "run-1") is None


@pytest.mark.parametrize(("recorded", "job", "live", "expected"), [
    ("queued", JobState("7", "PENDING", "Resources"), False, ("queued", "Slurm job 7 PENDING (Resources)")),
    ("queued", JobState("7", "RUNNING", nodes="n[1-2]"), False, ("starting", "Slurm job 7 RUNNING on n[1-2]")),
    ("running", JobState("7", "RUNNING", nodes="n[1-2]"), None, ("running", "Slurm job 7 RUNNING on n[1-2]")),
    ("queued", JobState("7", "CANCELLED", exit_code="0:15"), False,
     ("stopped", "Slurm job 7 ended CANCELLED, exit code 0:15 before the run recorded an end")),
    ("running", JobState("7", "TIMEOUT", exit_code="0:1"), None,
     ("failed", "Slurm job 7 ended TIMEOUT, exit code 0:1 before the run recorded an end (see the job's output: "
                "/r/slurm-7.out)")),
    ("running", JobState("7", "COMPLETED", exit_code="0:0"), None,
     ("lost", "Slurm job 7 ended COMPLETED, exit code 0:0, yet the run recorded no end")),
    ("running", None, None, ("lost", "Slurm no longer knows job 7 (ended long ago, and no accounting to ask), and "
                                     "the run recorded no end")),
])
def test_the_state_of_a_run_in_a_slurm_job_is_what_slurm_says_when_the_record_cannot_tell(recorded, job, live,
                                                                                          expected):
    record = {"state": recorded, "slurm": {"job_id": "7"}, "logs": {"runner": "/r/slurm-7.out"}}
    assert state_from_slurm(record, job, live) == expected
    assert state_from_slurm(record, None, live, error="squeue is not on PATH") == (
        recorded, "cannot ask Slurm about job 7: squeue is not on PATH")


@pytest.mark.parametrize(("args", "error"), [
    (("--partition", "gpu"), "--partition is for `train --slurm`; add --slurm to submit the run as a batch job"),
    (("--slurm", "--hostfile", "hosts"),
     "--slurm starts the Ray workers with srun on the allocation's nodes; drop --hostfile"),
    (("--slurm", "--master-addr", "10.0.0.1"),
     "--slurm: the Ray head is the allocation's first node, so Slurm picks MASTER_ADDR; drop --master-addr"),
    (("--slurm", "--detach"), "--slurm runs never depend on this terminal (Slurm runs them); drop --detach"),
    (("--slurm", "--nodes", "2"),
     "--nodes is for launch tests (--test-entrypoint); a recipe's run gets the recipe's nodes"),
    (("--slurm", "--prepared-run", "x"),
     "--prepared-run is what a --slurm run's batch script passes; it does not go with --slurm"),
])
def test_options_that_do_not_go_with_slurm_are_one_line_and_exit_2(tmp_path, args, error):
    from tests.conftest import run_cli

    r = run_cli("train", "--recipe", "megatron-multinode", "--runs-dir", str(tmp_path / "runs"), *args)
    assert (r.returncode, r.stderr) == (2, f"error: {error}\n")
    assert not (tmp_path / "runs").exists()
