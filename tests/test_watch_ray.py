"""Watching a run end to end on CPU: a real Ray head runs tests/standin_train.py in place of slime's
train.py (slime's log lines, in train.py's order, from Ray actors named as slime's are, so the job log
gets Ray's real prefixes), and the run's owner collects them.

Checked: metrics.jsonl as the supervisor wrote it while the job ran; `status` on the running job (phase,
rollout i of N, ETA, reward, eval); a crash, then `train --resume` whose curve continues at the
checkpoint's next rollout (the stand-in told to behave as patched slime does), and the report that
overlays both; a resume under the pin's behaviour, which starts over at rollout 0 and shows it; the
job env (RAY_DEDUP_LOGS=0, TENSORBOARD_DIR in the run directory)."""

import json
import re
import time
from pathlib import Path

import pytest

from runner.runs.collector import read_records
from tests.conftest import REPO, free_port, run_cli

pytest.importorskip("ray.job_submission", reason="needs ray[default] (pip install -e '.[test]')")

STANDIN = REPO / "tests" / "standin_train.py"


@pytest.fixture
def lab(tmp_path, short_tmp):
    runs = tmp_path / "runs"
    env = {"NCCL_NVLS_ENABLE": "0", "PYTHONUNBUFFERED": "1", "SLIME_RUNNER_LOCK": str(tmp_path / "runner.lock")}

    def train(*extra: str) -> list[str]:
        temp = f"{short_tmp}/t{len(list(Path(short_tmp).iterdir()))}"  # a new Ray temp dir each run
        return ["train", "--test-entrypoint", str(STANDIN), "--ray-temp-dir", temp,
                "--ray-port", str(free_port()), "--dashboard-port", str(free_port()), "--ready-timeout", "120",
                "--runs-dir", str(runs), "--kernel-cache", str(tmp_path / "kernels"), *extra]

    return {"runs": runs, "env": env, "train": train}


def _cli(lab, *args, **kw):  # noqa: ANN001, ANN003
    return run_cli(*args, "--runs-dir", str(lab["runs"]), env=lab["env"], **kw)


def _train(lab, *args):  # noqa: ANN001 - lab["train"] names the runs dir itself, before `--`
    return run_cli(*lab["train"](*args), env=lab["env"], timeout=300)


def _run_dirs(lab) -> list[Path]:  # noqa: ANN001
    return sorted(p for p in lab["runs"].iterdir() if (p / "run.json").is_file())


def _record(run_dir: Path) -> dict:
    return json.loads((run_dir / "run.json").read_text())


def _wait_ended(run_dir: Path, timeout: float = 300) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        record = _record(run_dir)
        if record["state"] not in ("starting", "running"):
            return record
        time.sleep(0.5)
    raise AssertionError(f"{run_dir.name} did not end within {timeout:.0f}s")


def _rollouts(records: list, kind: str = "rollout", source: str | None = None) -> list:
    return [r["rollout_id"] for r in records if r["kind"] == kind and (source is None or r["source"] == source)]


@pytest.mark.slow
def test_watching_a_run_its_crash_and_its_resume(lab):
    # 1. A detached run that saves at rollouts 3 and 7, evaluates at 0, 3, 7, and crashes in training at 6.
    first = _train(lab, "--recipe", "megatron-8gpu", "--detach", "--", "--num-rollout", "10", "--save-interval", "4",
                   "--eval-interval", "4", "--standin-seconds", "1.5", "--standin-start-id", "patched",
                   "--standin-crash-at", "6")
    assert first.returncode == 0, first.stderr[-3000:]
    (run1,) = _run_dirs(lab)
    # While it runs, `status` says where it is.
    deadline, seen = time.monotonic() + 240, None
    while time.monotonic() < deadline:
        facts = json.loads(_cli(lab, "status", run1.name, "--json").stdout)
        progress = facts.get("progress") or {}
        if facts["state"] == "running" and (progress.get("rollouts_done") or 0) >= 3:
            seen = _cli(lab, "status").stdout  # no RUN: the active runs
            break
        time.sleep(0.3)
    assert seen, "status never showed 3 rollouts done while the run was running"
    assert re.search(r"phase: +(rollout|train|update_weights|eval|save_model)", seen), seen
    assert re.search(r"progress: +rollout \d+ done, \d+ of 10 \(\d+%\); [\d.]+s per rollout; ETA ", seen), seen
    assert re.search(r"reward: +[\d.]+", seen) and re.search(r"eval: +aime [\d.]+ at rollout \d+", seen), seen
    assert re.search(rf"{run1.name} +megatron-8gpu +running +\d+/10 \w+",
                                               _cli(lab, "runs").stdout)

    rec1 = _wait_ended(run1)
    assert rec1["state"] == "failed", rec1
    env = rec1["job"]["runtime_env"]["env_vars"]
    assert env["RAY_DEDUP_LOGS"] == "0" and env["TENSORBOARD_DIR"] == str(run1 / "tensorboard")
    assert rec1["sinks"]["tensorboard"]["dir"] == str(run1 / "tensorboard") and not rec1["sinks"]["wandb"]["on"]
    job_log = (run1 / "job.log").read_text()
    assert "\x1b[36m(MegatronTrainRayActor pid=" in job_log and "(RolloutManager pid=" in job_log  # Ray's prefixes
    assert "standin: crash in training at rollout 6" in job_log and "[repeated" not in job_log

    # metrics.jsonl, as the supervisor collected it while the job ran.
    records = read_records(run1 / "metrics.jsonl")
    assert _rollouts(records) == [0, 1, 2, 3, 4, 5]
    assert _rollouts(records, "step") == [0, 1, 2, 3, 4, 5]  # Megatron: 16 x 4 / 64 = 1 step per rollout
    assert _rollouts(records, "perf", "train_metric_utils.py") == [0, 1, 2, 3, 4, 5]
    assert _rollouts(records, "perf", "rollout.py") == [0, 1, 2, 3, 4, 5, 6]  # rollout 6 was generated
    assert _rollouts(records, "eval") == [0, 3]
    assert {r["attempt"] for r in records} == {1}
    as_json = [json.loads(line) for line in _cli(lab, "metrics", run1.name, "--json").stdout.splitlines()]
    assert as_json == records  # `metrics` reads the same records back
    progress = json.loads((run1 / "progress.json").read_text())
    assert progress["rollout"] == 5 and progress["num_rollout"] == 10 and progress["first_rollout"] == 0
    assert (run1 / "checkpoints" / "latest_checkpointed_iteration.txt").read_text() == "3"

    # 2. Resume (the crash knob turned off, hence --force): slime as patched continues at 3 + 1.
    second = _train(lab, "--resume", run1.name, "--force", "--accept-changes", "--", "--standin-crash-at", "-1")
    assert second.returncode == 0, second.stderr[-3000:]
    run2 = next(p for p in _run_dirs(lab) if p != run1)
    rec2 = _wait_ended(run2)
    assert rec2["state"] == "succeeded" and rec2["resumed_from"]["iteration"] == "3"
    records2 = read_records(run2 / "metrics.jsonl")
    assert _rollouts(records2) == [4, 5, 6, 7, 8, 9]
    assert json.loads((run2 / "progress.json").read_text())["first_rollout"] == 4

    # The report overlays both: run 1's reward over rollouts 0-5, the resume's over 4-9.
    report = run1.parent / "both.html"
    r = _cli(lab, "report", run1.name, run2.name, "-o", str(report), "--json")
    assert r.returncode == 0, r.stderr
    series = {(s["run"], s["key"]): s["points"] for s in json.loads(r.stdout)["series"]}
    assert series[(run1.name, "rollout/raw_reward")] == 6 and series[(run2.name, "rollout/raw_reward")] == 6
    html = report.read_text()
    assert f'data-run="{run2.name}" data-key="rollout/raw_reward"' in html
    points = dict(_report_points(run2))
    assert sorted(points) == [4, 5, 6, 7, 8, 9]

    # 3. The same resume under slime 3d7599aa's own behaviour: weights of iteration 9, rollouts from 0 again.
    third = _train(lab, "--resume", run2.name, "--force", "--accept-changes", "--", "--standin-start-id", "pin",
                   "--num-rollout", "2")
    assert third.returncode == 0, third.stderr[-3000:]
    run3 = next(p for p in _run_dirs(lab) if p not in (run1, run2))
    rec3 = _wait_ended(run3)
    assert rec3["resumed_from"]["iteration"] == "9"
    assert _rollouts(read_records(run3 / "metrics.jsonl")) == [0, 1]  # what issue 17's check will catch
    assert json.loads((run3 / "progress.json").read_text())["first_rollout"] == 0


def _report_points(run_dir: Path) -> list:
    from runner.runs.html_report import per_rollout

    return per_rollout(read_records(run_dir / "metrics.jsonl"), "rollout/raw_reward", ("rollout",))
