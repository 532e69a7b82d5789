"""The keeper's pure parts (issue 17 items 2, 4, 5): failure classification from upstream's own messages,
hang limits that calibrate themselves, the restart policy, and the monitor on the collector's real
progress state (slime's lines through runner.runs.collector, as the stand-in prints them)."""

import json
import time
from pathlib import Path

import pytest

from runner.runs.collector import Collector
from runner.runs.failure import classify
from runner.runs.hang import HangLimits, HangSpecError, hang_verdict, parse_hang_timeouts
from runner.runs.monitor import Monitor
from runner.runs.progress import RunShape
from runner.runs.restart_policy import RestartPolicy, decide, parse_backoff
from tests.standin_train import OOM_MESSAGE, format_line

RAY = "\x1b[36m(MegatronTrainRayActor pid=4242)\x1b[0m "


# -- classification ------------------------------------------------------------------------------------

def _driver_traceback(last: str) -> str:
    return ("Traceback (most recent call last):\n  File \"train.py\", line 99, in <module>\n    train(args)\n"
            f"{last}\n")


@pytest.mark.parametrize("tail, reason", [
    (RAY + "torch.OutOfMemoryError: " + OOM_MESSAGE + "\n"
     + _driver_traceback("ray.exceptions.RayTaskError(OutOfMemoryError): ray::MegatronTrainRayActor.train()"),
     "cuda_oom"),
    ("ray.exceptions.OutOfMemoryError: Task was killed due to the node running low on memory.\n"
     "Memory on the node (IP: 10.0.0.2, ID: ab12) where the task was running was 1900.00GB / 2000.00GB",
     "host_oom"),
    (RAY + "[rank3]:[E1205 10:00:00.000 ProcessGroupNCCL.cpp:632] [Rank 3] Watchdog caught collective operation "
     "timeout: WorkNCCL(SeqNum=9, OpType=ALLREDUCE, NumelIn=1, NumelOut=1, Timeout(ms)=600000) ran for 600004 "
     "milliseconds before timing out.", "nccl"),
    ("[2026-12-05 10:00:00] health_monitor.py:85 - Health check failed for rollout engine 1 (ray timeout or "
     "error). Killing actor. Exception: boom", "sglang"),
    ("httpx.HTTPStatusError: Server error '503 Service Unavailable' for url 'http://10.0.0.1:30000/generate'",
     "sglang"),
    (_driver_traceback("ray.exceptions.ActorDiedError: The actor died unexpectedly before finishing this task.\n"
                       "\tclass_name: RolloutManager"), "ray_died"),
    (_driver_traceback("RuntimeError: standin: crash in training at rollout 4"), "python"),
    ("the job ended\nnothing said why", "unknown"),
])
def test_classify(tail, reason):
    assert classify(tail).reason == reason


def test_classify_keeps_the_line_without_rays_prefix():
    got = classify(RAY + "RuntimeError: standin: crash\nTraceback (most recent call last):\n")
    assert got.reason == "python" and got.line == "RuntimeError: standin: crash"


# -- hang limits ---------------------------------------------------------------------------------------

def test_hang_limits_calibrate_from_the_phase_durations():
    limits = parse_hang_timeouts(["train=2"])
    assert limits.limit("train", []) == 120
    assert limits.limit("train", [10, 40, 30]) == 200  # 5 x 40 s
    assert limits.limit("train", [1000] + [1] * 10) == 120  # only the last 10 count
    assert limits.limit("some_new_timer", []) == 3600  # "other"
    assert limits.limit("startup", [99999]) == 90 * 60  # startup has no calibration


@pytest.mark.parametrize("spec", ["train", "nope=3", "train=0", "train=-1", "train=x", "train=inf"])
def test_bad_hang_timeouts(spec):
    with pytest.raises(HangSpecError, match=r"--hang-timeout"):
        parse_hang_timeouts([spec])


def test_hang_verdict_names_the_phase_and_the_option():
    progress = {"phase": "rollout", "weights_synced": True, "phase_durations": {"rollout": [60.0]}}
    limits = parse_hang_timeouts([])
    assert hang_verdict(progress, limits, 45 * 60) is None
    line = hang_verdict(progress, limits, 46 * 60)
    assert line.startswith("hang: no progress for 46.0 min in phase rollout (limit 45.0 min")
    assert "--hang-timeout rollout=MINUTES" in line
    assert hang_verdict({"phase": "update_weights", "weights_synced": False}, limits, 89 * 60) is None
    assert "before the first weight sync" in hang_verdict({"phase": "update_weights"}, limits, 91 * 60)
    assert hang_verdict(progress, parse_hang_timeouts(["off"]), 10 ** 6) is None
    assert HangLimits.from_json(limits.to_json()) == limits


# -- restart policy ------------------------------------------------------------------------------------

def _attempt(n, reason="python", rollout=4, progressed=True, new=True, state="failed"):  # noqa: ANN001
    return {"attempt": n, "state": state, "reason": reason, "rollout": rollout, "progressed": progressed,
            "new_checkpoint": new}


def test_restart_policy():
    policy = RestartPolicy(3, (60, 300, 900))
    assert decide([_attempt(1)], policy).delay_s == 60
    assert decide([_attempt(1), _attempt(2, rollout=8)], policy).delay_s == 300
    assert not decide([_attempt(1, state="succeeded")], policy).restart
    assert not decide([_attempt(1, state="stopped")], policy).restart
    assert "never made progress" in decide([_attempt(1, progressed=False)], policy).why
    assert decide([_attempt(1), _attempt(2, progressed=False, rollout=5)], policy).restart  # only the first
    assert "same failure (python) at the same rollout 4" in decide([_attempt(1), _attempt(2)], policy).why
    assert decide([_attempt(1), _attempt(2, reason="nccl")], policy).restart
    assert "both ended without a new complete checkpoint" in decide(
        [_attempt(1, new=False), _attempt(2, rollout=2, new=False)], policy).why
    assert "misalignment" in decide([_attempt(1, reason="misalignment")], policy).why
    spent = [_attempt(1, rollout=1), _attempt(2, rollout=2), _attempt(3, rollout=3), _attempt(4, rollout=5)]
    assert decide(spent, policy).why == "no restart: the restart budget is spent (3 of --max-restarts 3)"
    assert decide(spent[:3], policy).delay_s == 900
    assert decide([_attempt(1)], RestartPolicy(0)).why == "no restart: --max-restarts is 0"


@pytest.mark.parametrize("text", ["", "a", "60,-1", "inf", "1,,2"])
def test_bad_backoff(text):
    with pytest.raises(ValueError, match="--restart-backoff"):
        parse_backoff(text)


def test_backoff_repeats_its_last_value():
    assert parse_backoff("1,5") == (1.0, 5.0) and RestartPolicy(9, (1.0, 5.0)).delay(7) == 5.0


# -- the monitor on the collector's progress -----------------------------------------------------------

class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _feed(collector: Collector, *lines: str) -> None:
    collector.feed("".join(RAY + line + "\n" for line in lines).encode())


def _timer(name: str, edge: str, at: float) -> str:
    if edge == "start":
        return format_line("timer_start", created=at, name=name)
    return format_line("timer_end", created=at, name=name, elapsed_time=1.0)


def _monitor(tmp_path: Path, clock: Clock, **kw) -> Monitor:  # noqa: ANN003
    defaults = {"limits": parse_hang_timeouts(["train=1", "rollout=1"]), "resumed": None,
                "save_dir": str(tmp_path), "global_dataset": True, "keep": None, "checkpoint_bytes": None,
                "baseline_progress_seen": None, "clock": clock}
    return Monitor(**{**defaults, **kw})


def test_a_hang_in_training_with_only_health_checks(tmp_path):
    clock = Clock()
    collector = Collector(RunShape(num_rollout=10, steps_per_rollout=1))
    monitor = _monitor(tmp_path, clock)
    t = time.time()
    _feed(collector, _timer("update_weights", "start", t), _timer("update_weights", "end", t + 1),
          _timer("data_preprocess", "start", t + 2), _timer("train", "start", t + 2))
    collector.progress["last_progress_seen"] = clock.now
    monitor.tick(collector.progress)
    assert monitor.phase == "train" and monitor.progressed and monitor.verdict is None
    health = '[2026-12-05 10:00:00] INFO:     127.0.0.1:40001 - "GET /health_generate HTTP/1.1" 200 OK'
    for _ in range(6):  # health checks for 60 s: no progress
        clock.now += 10
        collector.feed((health + "\n").encode())
        monitor.tick(collector.progress)
    assert monitor.verdict is None  # 60 s is the limit itself
    clock.now += 1
    monitor.tick(collector.progress)
    assert monitor.verdict.reason == "hang" and "in phase train" in monitor.verdict.line


def test_a_tracker_change_is_progress(tmp_path):
    clock = Clock()
    collector = Collector(RunShape())
    monitor = _monitor(tmp_path, clock, limits=parse_hang_timeouts(["startup=1"]))
    clock.now += 50
    (tmp_path / "latest_checkpointed_iteration.txt").write_text("3")
    monitor.tick(collector.progress)
    clock.now += 50
    monitor.tick(collector.progress)
    assert monitor.verdict is None and monitor.progressed  # 50 s since the tracker moved
    clock.now += 11
    monitor.tick(collector.progress)
    assert monitor.verdict.reason == "hang" and "before the first weight sync" in monitor.verdict.line


def test_a_resume_that_restarts_at_rollout_0_is_a_misalignment(tmp_path):
    clock = Clock()
    collector = Collector(RunShape(num_rollout=10))
    monitor = _monitor(tmp_path, clock, resumed={"iteration": 19, "backend": "megatron"})
    perf = {"perf/rollout_time": 1.0}
    _feed(collector, format_line("rollout_perf", rollout_id=0, log_dict=perf))
    monitor.tick(collector.progress)
    assert monitor.verdict.reason == "misalignment"
    assert monitor.verdict.line.startswith("resume misalignment: the job started at rollout 0")
    aligned = _monitor(tmp_path, clock, resumed={"iteration": 19, "backend": "megatron"})
    fresh = Collector(RunShape(num_rollout=30))
    _feed(fresh, format_line("rollout_perf", rollout_id=20, log_dict=perf))
    aligned.tick(fresh.progress)
    assert aligned.verdict is None and aligned.failing_rollout() == 20


def test_progress_from_an_earlier_attempt_is_not_this_attempts(tmp_path):
    clock = Clock()
    monitor = _monitor(tmp_path, clock, baseline_progress_seen=900.0)
    monitor.tick({"phase": "startup", "last_progress_seen": 900.0})
    assert not monitor.progressed
    monitor.tick({"phase": "startup", "last_progress_seen": 1001.0})
    assert monitor.progressed


def test_keeper_options_in_the_record():
    from argparse import Namespace

    from runner.runs.keeper_args import keeper_record

    record, problems = keeper_record(Namespace(detach=True, max_restarts=None, restart_backoff="5",
                                               hang_timeout=["eval=90"]), checkpoint_bytes=10)
    assert problems == [] and record["restart"] == {"max_restarts": 3, "backoff_s": [5.0]}
    assert record["hang"]["floors_min"]["eval"] == 90 and record["checkpoint_bytes"] == 10
    record, problems = keeper_record(Namespace(detach=False, max_restarts=2, restart_backoff=None, hang_timeout=[]))
    assert record["restart"]["max_restarts"] == 0 and "--max-restarts 2 is for detached runs" in problems[0]
    json.dumps(record)


def test_train_says_how_it_keeps_the_run_and_refuses_restarts_in_the_foreground(tmp_path):
    from tests.conftest import REPO, run_cli, unused_short_path

    base = ["train", "--recipe", "megatron-8gpu", "--test-entrypoint", str(REPO / "tests" / "standin_train.py"),
            "--runs-dir", str(tmp_path / "runs"), "--ray-temp-dir", str(unused_short_path()), "--dry-run"]
    r = run_cli(*base, "--detach", "--max-restarts", "2", "--restart-backoff", "1,2", "--hang-timeout", "eval=90")
    assert r.returncode == 0, r.stderr
    assert ("keeper: a failed or hung attempt restarts from the latest complete checkpoint, up to 2 time(s), after "
            "1, 2 s") in r.stdout
    assert "eval 90," in r.stdout
    refused = run_cli(*base[:-1], "--max-restarts", "2")  # not a dry-run: refused before anything starts
    errors = [line for line in refused.stderr.splitlines() if line.startswith("error: ")]
    assert refused.returncode == 2 and len(errors) == 1 and "--max-restarts 2 is for detached runs" in errors[0]
    bad = run_cli(*base, "--detach", "--restart-backoff", "soon")
    assert bad.returncode == 2 and "--restart-backoff" in bad.stderr
    assert not (tmp_path / "runs").exists()


def test_a_job_that_never_ran_is_a_launch_failure_with_the_job_process_words(tmp_path):
    from runner.runs.keeper import _runner_error

    log = tmp_path / "runner.log"
    log.write_text("[runner] starting Ray head on 127.0.0.1:6379\n"
                   "[runner] error: could not submit job run-1: the head's job agent has not registered yet\n"
                   "[runner] job finished with exit code 1\n")
    assert _runner_error(log) == "error: could not submit job run-1: the head's job agent has not registered yet"
    assert _runner_error(tmp_path / "absent.log") is None
