"""slime's own sinks land in the run directory: TENSORBOARD_DIR in the job's env, --wandb-dir only when
the flags turn wandb on (so a run without wandb keeps the script's argv); and the job env turns Ray's
log deduplication off, so the metrics collector sees every line. Checked on train's dry-run plan."""

import json
import re

import pytest

from tests.test_train_cli import train

pytestmark = pytest.mark.machine(gpu="h100", force=False)


def _plan(machine, *extra):  # noqa: ANN001
    slime = extra[extra.index("--"):] if "--" in extra else ()
    r = train(machine, "--force", "--dry-run", "--json", *extra[:len(extra) - len(slime)], *slime)
    assert r.returncode == 0, r.stderr
    plan = json.loads(r.stdout)
    (runtime_env,) = [json.loads(c) for c in plan["files"].values()]
    job = plan["processes"][-1]["argv"]
    entry = job[job.index("--") + 1:]
    run_dir = re.search(r"run \S+: (\S+) \(run.json", "\n".join(plan["notes"])).group(1)
    return runtime_env["env_vars"], entry, run_dir


def test_job_env_has_tensorboard_dir_and_no_log_dedup(machine):  # noqa: F811
    env, entry, run_dir = _plan(machine)
    assert env["TENSORBOARD_DIR"] == f"{run_dir}/tensorboard"
    assert env["RAY_DEDUP_LOGS"] == "0"
    assert "--wandb-dir" not in entry  # wandb is off in the recipe: the argv stays the script's


@pytest.mark.parametrize("extra", [("--set", "use-wandb", "--set", "wandb-mode=offline"),
                                   ("--", "--use-wandb", "--wandb-mode", "offline")])
def test_wandb_dir_goes_into_the_run_directory_when_wandb_is_on(machine, extra):  # noqa: F811
    _, entry, run_dir = _plan(machine, *extra)
    assert entry[entry.index("--wandb-dir") + 1] == f"{run_dir}/wandb"


def test_a_wandb_dir_of_the_users_wins(machine, tmp_path):  # noqa: F811
    _, entry, _ = _plan(machine, "--set", "use-wandb", "--set", f"wandb-dir={tmp_path / 'mine'}")
    assert entry.count("--wandb-dir") == 1 and entry[entry.index("--wandb-dir") + 1] == str(tmp_path / "mine")


def test_run_json_records_the_sinks():
    from runner.flags import FlagSet
    from runner.runs.sinks import sinks_record

    flags = FlagSet.parse(["--use-wandb", "--wandb-mode", "offline", "--wandb-dir", "/runs/r/wandb"])
    record = sinks_record(flags, {"TENSORBOARD_DIR": "/runs/r/tensorboard"})
    assert record["tensorboard"] == {"dir": "/runs/r/tensorboard", "on": False,
                                     "open": "tensorboard --logdir /runs/r/tensorboard"}
    assert record["wandb"] == {"dir": "/runs/r/wandb", "on": True, "mode": "offline",
                               "open": "wandb sync /runs/r/wandb/wandb/offline-run-*"}
