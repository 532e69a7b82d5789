"""-P reaches the runner's own Python children: the flake's apps run `python -P -m runner` so that a
checkout's ./runner in the working directory cannot stand in for the flake's runner; each child started as
`python -m runner.x` (the job submitter, the driver's secrets wrapper, the hub fetcher, the detached
supervisor) gets -P too, and torchrun's smoke workers PYTHONSAFEPATH=1. Python 3.10 has no -P: nothing
is added there (and these tests skip)."""

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import REPO, RUNNER_ENV

pytestmark = pytest.mark.skipif(sys.version_info < (3, 11), reason="Python 3.10 has no -P")
DECOY = 'raise ImportError("DECOY: the runner in the working directory was imported")\n'


def decoy_dir(tmp_path):
    (tmp_path / "runner").mkdir(parents=True)
    (tmp_path / "runner" / "__init__.py").write_text(DECOY)
    return tmp_path


def runner_p(*args, cwd, env=None, safe=True, timeout=120):
    """`python [-P] -m runner ARGS`, the real runner on PYTHONPATH (as the flake's env has it installed)."""
    base = {k: v for k, v in os.environ.items() if k not in RUNNER_ENV and not k.startswith("SLIME_RUNNER_")}
    argv = [sys.executable, *(["-P"] if safe else []), "-m", "runner", *args]
    return subprocess.run(argv, capture_output=True, text=True, cwd=str(cwd), timeout=timeout,
                          env={**base, **(env or {}), "PYTHONPATH": str(REPO)})


def test_children_get_minus_p_when_the_runner_has_it(tmp_path):
    cwd = decoy_dir(tmp_path / "w")
    for safe in (True, False):
        flag = ["-P"] if safe else []
        train = json.loads(runner_p("train", "--recipe", "megatron-8gpu", "--dry-run", "--json", "--ray-temp-dir",
                                    "/tmp/rt-unused-p", cwd=REPO, safe=safe, env={"WANDB_API_KEY": "k" * 20}).stdout)
        job = train["processes"][-1]["argv"]
        assert job[1:3 + len(flag)] == [*flag, "-m", "runner.runs.ray_job"][:2 + len(flag)], job[:4]
        entry = job[job.index("--") + 1:]
        assert entry[1:3 + len(flag)] == [*flag, "-m", "runner.launch.job_secrets"], entry[:4]
        download = json.loads(runner_p("download", "--dry-run", "--json", "--skip-model", cwd=REPO,
                                       safe=safe).stdout)
        assert all(p["argv"][1:2 + len(flag)] == [*flag, "-m"] for p in download["processes"])
        smoke = json.loads(runner_p("smoke", "--device", "cpu", "--dry-run", "--json", cwd=REPO, safe=safe).stdout)
        (torchrun,) = smoke["processes"]
        assert torchrun["argv"][1:2 + len(flag)] == [*flag, "-m"]
        assert torchrun["env"].get("PYTHONSAFEPATH") == ("1" if safe else None)
    # A dry-run from the decoy's directory works with -P (and shows why it matters without it).
    assert runner_p("download", "--dry-run", "--skip-model", cwd=cwd).returncode == 0
    assert "DECOY" in runner_p("download", "--dry-run", "--skip-model", cwd=cwd, safe=False).stderr


@pytest.mark.slow
def test_the_hub_fetcher_started_from_a_checkout_is_the_runners(tmp_path):
    """A real `download`, from a directory whose ./runner is a decoy: its hf_fetch children run the
    runner's code (they ask the hub stand-in for the file), not the decoy."""
    pytest.importorskip("huggingface_hub")
    from tests.hub_standin import HubStandIn

    cwd = decoy_dir(tmp_path / "w")
    files = {("dataset", "zhuzilin/dapo-math-17k"): {"dapo-math-17k.jsonl": 10},
             ("dataset", "zhuzilin/aime-2024"): {"aime-2024.jsonl": 10}}
    with HubStandIn(files) as hub:
        env = {"HF_ENDPOINT": hub.url, "HF_HUB_ETAG_TIMEOUT": "5", "HF_HUB_DOWNLOAD_TIMEOUT": "5"}
        r = runner_p("download", "--skip-model", "--base-folder", str(tmp_path / "m"), cwd=cwd, env=env,
                     timeout=300)
    assert "DECOY" not in r.stderr, r.stderr[-2000:]
    # The fetcher asked the hub about the dataset, so it ran (which request comes first depends on
    # huggingface_hub's version: the file tree, a file, or the repo's info at a revision).
    assert any("zhuzilin/dapo-math-17k" in p for p in hub.requests), hub.requests
