"""The stand-in train.py's fault knobs, through the runner and a real Ray head (as tests/test_watch_ray.py
runs it): CUDA's out-of-memory error, a hang that keeps printing sglang health checks, a checkpoint
half written when the process dies (FSDP's layout), a save that ends before the data state. The
recovery of issue 17 will be tested on these; here: each fault does what its knob says, and the
collector reads what the job printed until then."""

import json
import time
from pathlib import Path

import pytest

from runner.runs.collector import read_records
from tests.conftest import REPO, free_port, run_cli

pytest.importorskip("ray.job_submission", reason="needs ray[default] (pip install -e '.[test]')")

STANDIN = REPO / "tests" / "standin_train.py"
HEALTH_CHECK = '"GET /health_generate HTTP/1.1" 200 OK'


@pytest.fixture
def lab(tmp_path, short_tmp):
    runs = tmp_path / "runs"
    env = {"NCCL_NVLS_ENABLE": "0", "PYTHONUNBUFFERED": "1", "SLIME_RUNNER_LOCK": str(tmp_path / "runner.lock")}

    def train(recipe: str, *extra: str, detach: bool = False):
        argv = ["train", "--recipe", recipe, "--test-entrypoint", str(STANDIN), "--ray-temp-dir", f"{short_tmp}/t",
                "--ray-port", str(free_port()), "--dashboard-port", str(free_port()), "--ready-timeout", "120",
                "--runs-dir", str(runs), "--kernel-cache", str(tmp_path / "kernels"), *(["--detach"] if detach else []),
                "--", "--num-rollout", "6", "--standin-seconds", "0.2", *extra]
        result = run_cli(*argv, env=env, timeout=300)
        found = [p for p in runs.iterdir() if (p / "run.json").is_file()] if runs.exists() else []
        assert len(found) == 1, result.stderr[-3000:]
        return result, found[0]

    return {"train": train, "runs": runs, "env": env}


def _rollouts(run_dir: Path, kind: str = "rollout") -> list:
    return [r["rollout_id"] for r in read_records(run_dir / "metrics.jsonl") if r["kind"] == kind]


@pytest.mark.slow
def test_cuda_out_of_memory_then_exit(lab):
    result, run_dir = lab["train"]("megatron-8gpu", "--standin-oom-at", "2")
    assert result.returncode != 0
    log = (run_dir / "job.log").read_text()
    assert "OutOfMemoryError" in log and "CUDA out of memory. Tried to allocate 2.00 GiB" in log
    assert json.loads((run_dir / "run.json").read_text())["state"] == "failed"
    assert _rollouts(run_dir) == [0, 1]


@pytest.mark.slow
def test_a_hang_that_keeps_printing_health_checks(lab):
    result, run_dir = lab["train"]("megatron-8gpu", "--standin-hang", "train", "--standin-hang-at", "2",
                                   "--standin-health-interval", "0.3", detach=True)
    assert result.returncode == 0, result.stderr[-3000:]
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            log = (run_dir / "job.log").read_text()
            if "hanging in train 2" in log and log.split("hanging in train 2")[1].count(HEALTH_CHECK) >= 5:
                break
            time.sleep(0.5)
        else:
            raise AssertionError("no hang with health checks in the job log")
        assert "(SGLangEngine pid=" in log  # printed by the engine actor, behind Ray's prefix
        time.sleep(2.5)  # one more collector poll
        progress = json.loads((run_dir / "progress.json").read_text())
        assert progress["phase"] == "train" and progress["rollouts_done"] == 2  # rollouts 0 and 1; stuck in 2
        last = progress["last_progress"]
        time.sleep(2.5)
        assert json.loads((run_dir / "progress.json").read_text())["last_progress"] == last  # no progress
    finally:
        stop = run_cli("stop", run_dir.name, "--runs-dir", str(lab["runs"]), env=lab["env"], timeout=300)
    assert stop.returncode == 0, stop.stderr
    assert json.loads((run_dir / "run.json").read_text())["state"] == "stopped"


@pytest.mark.slow
def test_a_checkpoint_half_written_when_the_process_dies_fsdp(lab):
    # 4 prompts x 3 samples (the recipe) over a global batch of 6: 2 training steps per rollout.
    result, run_dir = lab["train"]("fsdp", "--save-interval", "2", "--global-batch-size", "6",
                                   "--standin-half-checkpoint", "3")
    assert result.returncode != 0
    ckpt = run_dir / "checkpoints"
    # FSDP saves rollout r as iter_{r+1} (fsdp_utils/checkpoint.py); rollout 1's is complete.
    assert (ckpt / "latest_checkpointed_iteration.txt").read_text() == "2"
    assert json.loads((ckpt / "iter_0000002" / "meta.json").read_text())["next_rollout_id"] == 2
    assert (ckpt / "rollout" / "global_dataset_state_dict_1.pt").is_file()
    assert (ckpt / "iter_0000004" / "model" / "__0_0.distcp").is_file()  # rollout 3's: half written
    assert not (ckpt / "iter_0000004" / "meta.json").exists()
    assert not (ckpt / "rollout" / "global_dataset_state_dict_3.pt").exists()
    # FSDP's lines through Ray: its global step counter, each step under the rollout its trainer announced.
    steps = [(r["step"], r["rollout_id"]) for r in read_records(run_dir / "metrics.jsonl") if r["kind"] == "step"]
    assert steps == [(n, n // 2) for n in range(8)]


@pytest.mark.slow
def test_a_save_that_ends_before_the_data_state(lab):
    result, run_dir = lab["train"]("megatron-8gpu", "--save-interval", "2", "--standin-no-data-state", "3")
    assert result.returncode != 0
    ckpt = run_dir / "checkpoints"
    assert (ckpt / "latest_checkpointed_iteration.txt").read_text() == "3"  # the tracker names 3 ...
    assert (ckpt / "iter_0000003" / "common.pt").is_file()
    assert (ckpt / "rollout" / "global_dataset_state_dict_1.pt").is_file()
    assert not (ckpt / "rollout" / "global_dataset_state_dict_3.pt").exists()  # ... without its data state
    assert _rollouts(run_dir) == [0, 1, 2, 3]
