"""The latest complete checkpoint: folders on disk as slime and Megatron write them (both
backends), the --ckpt-step fallback, and `train --resume RUN --dry-run` through the real CLI."""

import json
from pathlib import Path

import pytest

from runner.runs.checkpoints import ResumePoint, complete_iterations, latest_complete
from runner.runs.layout import RunPaths
from runner.runs.record import create_record
from tests.checkpoint_folders import TRACKER, save
from tests.conftest import run_cli
from tests.test_runs import _entry_flags

# The train tests here plan on a machine with 8 H100s and no --force (tests/machine.py).
pytestmark = pytest.mark.machine(gpu="h100", force=False)


def test_all_complete_resumes_from_the_tracker_without_ckpt_step(tmp_path):
    for rollout in (19, 39):
        save(tmp_path, rollout)
    assert complete_iterations(tmp_path, global_dataset=True) == [19, 39]
    point = latest_complete(tmp_path, global_dataset=True)
    assert point == ResumePoint(39, 39, (), "megatron")
    assert point.ckpt_step_args() == () and point.next_rollout == 40 and point.note() is None


def test_tracker_without_data_state_falls_back_with_ckpt_step(tmp_path):
    save(tmp_path, 19)
    save(tmp_path, 39, data_state=False)  # died between the actor's save and the rollout manager's
    assert complete_iterations(tmp_path, global_dataset=True) == [19]
    point = latest_complete(tmp_path, global_dataset=True)
    assert (point.iteration, point.tracker, point.next_rollout) == (19, 39, 20)
    assert point.ckpt_step_args() == ("--ckpt-step", "19")
    (n, why), = point.skipped
    assert n == 39 and why.startswith("no rollout/global_dataset_state_dict_39.pt")
    assert "--ckpt-step 19" in point.note() and "tracker is left as slime wrote it" in point.note()
    assert (tmp_path / TRACKER).read_text() == "39"  # never edited
    # Without --rollout-global-dataset there is no data state to miss.
    assert latest_complete(tmp_path, global_dataset=False).iteration == 39


def test_half_written_megatron_folders(tmp_path):
    save(tmp_path, 19)
    save(tmp_path, 39, finished=False)  # killed mid-save: no metadata.json, tracker still 19
    point = latest_complete(tmp_path, global_dataset=True)
    assert (point.iteration, point.tracker, point.ckpt_step_args()) == (19, 19, ())
    assert point.skipped == ((39, "newer than the tracker's iteration: a save that did not finish"),)
    # The tracker's own folder lost its last file (e.g. a copy cut short): fall back.
    save(tmp_path, 59)
    (tmp_path / "iter_0000059" / "metadata.json").unlink()
    point = latest_complete(tmp_path, global_dataset=True)
    assert (point.iteration, point.tracker, point.ckpt_step_args()) == (19, 59, ("--ckpt-step", "19"))
    assert [n for n, _ in point.skipped] == [59, 39]
    assert "iter_0000059/metadata.json is missing" in point.skipped[0][1]


def test_megatron_legacy_per_rank_folders(tmp_path):
    save(tmp_path, 9)
    for rollout, files in ((19, ("mp_rank_00", "mp_rank_01")), (29, ("mp_rank_00",))):
        it = tmp_path / f"iter_{rollout:07d}"
        for rank in ("mp_rank_00", "mp_rank_01"):
            (it / rank).mkdir(parents=True)
        for rank in files:
            (it / rank / "model_optim_rng.pt").write_bytes(b"\0")
        (tmp_path / "rollout" / f"global_dataset_state_dict_{rollout}.pt").write_bytes(b"\0")
        (tmp_path / TRACKER).write_text(str(rollout))
    point = latest_complete(tmp_path, global_dataset=True)
    assert point.iteration == 19 and "mp_rank_01/model_optim_rng.pt is missing" in point.skipped[0][1]


def test_fsdp_folders_are_one_ahead_of_their_data_state(tmp_path):
    save(tmp_path, 19, "fsdp")  # iter_0000020, global_dataset_state_dict_19.pt
    save(tmp_path, 39, "fsdp", data_state=False)
    assert complete_iterations(tmp_path, global_dataset=True) == [20]
    point = latest_complete(tmp_path, global_dataset=True)
    assert (point.iteration, point.tracker, point.backend, point.next_rollout) == (20, 40, "fsdp", 20)
    assert point.ckpt_step_args() == ("--ckpt-step", "20")
    assert point.skipped[0][1].startswith("no rollout/global_dataset_state_dict_39.pt")
    save(tmp_path, 39, "fsdp")
    save(tmp_path, 59, "fsdp", finished=False)  # model/ begun, no meta.json, tracker still 40
    point = latest_complete(tmp_path, global_dataset=True)
    assert (point.iteration, point.ckpt_step_args()) == (40, ())
    (tmp_path / "iter_0000040" / "meta.json").unlink()
    (tmp_path / TRACKER).write_text("40")
    point = latest_complete(tmp_path, global_dataset=True)
    assert point.iteration == 20 and "iter_0000040/meta.json is missing" in point.skipped[-1][1]


def test_nothing_complete_and_megatron_iteration_zero_are_problems(tmp_path):
    save(tmp_path, 19, data_state=False)
    point = latest_complete(tmp_path, global_dataset=True)
    assert point.iteration is None and point.ckpt_step_args() == ()
    assert point.problem(tmp_path).startswith(f"{tmp_path} holds no complete checkpoint (iter_0000019: no rollout/")
    save(tmp_path, 0)
    save(tmp_path, 19, data_state=False)
    point = latest_complete(tmp_path, global_dataset=True)
    assert point.iteration == 0 and "Megatron ignores --ckpt-step 0" in point.problem(tmp_path)
    assert latest_complete(tmp_path / "none", global_dataset=True) == ResumePoint(None, None, (), "megatron")


def _previous_run(tmp_path: Path, recipe: str = "megatron-8gpu") -> tuple[RunPaths, Path]:
    folder = tmp_path / "runs" / f"{recipe}-20261129-000000-abcd" / "checkpoints"
    previous = RunPaths(folder.parent)
    create_record(previous, {"id": previous.id, "state": "failed", "request": {"recipe": recipe, "overrides": []},
                             "checkpoint": {"folder": str(folder), "save": str(folder)}})
    return previous, folder


def _resume(machine, tmp_path, run_id, *extra):
    env = {**machine["env"], "SLIME_RUNNER_LOCK": str(tmp_path / "lock")}
    return run_cli("train", "--resume", run_id, "--runs-dir", str(tmp_path / "runs"), *machine["args"],
                   "--dry-run", "--json", *extra, env=env)


@pytest.mark.parametrize("recipe,backend,fallback", [("megatron-8gpu", "megatron", 19), ("fsdp-h200", "fsdp", 20)])
def test_train_resume_dry_run_shows_ckpt_step_and_why(machine, tmp_path, recipe, backend, fallback):
    previous, folder = _previous_run(tmp_path, recipe)
    save(folder, 19, backend)
    save(folder, 39, backend, data_state=False)
    r = _resume(machine, tmp_path, previous.id)
    plan = json.loads(r.stdout)
    entry = _entry_flags(plan)
    assert entry[entry.index("--ckpt-step") + 1] == str(fallback)
    assert entry[entry.index("--load") + 1] == str(folder)
    assert any(n.startswith(f"resumes {previous.id} from iteration {fallback}") for n in plan["notes"])
    (note,) = [n for n in plan["notes"] if "--ckpt-step" in n]
    assert f"not complete (iter_{fallback + 20:07d}: no rollout/global_dataset_state_dict_39.pt" in note
    assert not [p for p in plan["problems"] if "complete checkpoint" in p["message"]]
    assert (folder / TRACKER).read_text() == str(fallback + 20)
    # Once complete, the tracker's own checkpoint is loaded, with no --ckpt-step.
    save(folder, 39, backend)
    entry = _entry_flags(json.loads(_resume(machine, tmp_path, previous.id).stdout))
    assert "--ckpt-step" not in entry


def test_train_resume_with_no_complete_checkpoint_is_refused(machine, tmp_path):
    previous, folder = _previous_run(tmp_path)
    save(folder, 19, finished=True, data_state=False)
    r = _resume(machine, tmp_path, previous.id)
    errors = [p["message"] for p in json.loads(r.stdout)["problems"] if p["severity"] == "error"]
    assert any(e.startswith(f"{folder} holds no complete checkpoint (iter_0000019: no rollout/") for e in errors)
    refused = run_cli("train", "--resume", previous.id, "--runs-dir", str(tmp_path / "runs"), *machine["args"],
                      env={**machine["env"], "SLIME_RUNNER_LOCK": str(tmp_path / "lock")})
    assert refused.returncode == 2 and "holds no complete checkpoint" in refused.stderr
    assert not (tmp_path / "runs").joinpath("x").exists() and len(list((tmp_path / "runs").iterdir())) == 1


def test_an_explicit_ckpt_step_is_kept(machine, tmp_path):
    previous, folder = _previous_run(tmp_path)
    save(folder, 9)
    save(folder, 19)
    save(folder, 39, data_state=False)
    plan = json.loads(_resume(machine, tmp_path, previous.id, "--accept-changes", "--", "--ckpt-step", "9").stdout)
    entry = _entry_flags(plan)
    assert entry.count("--ckpt-step") == 1 and entry[entry.index("--ckpt-step") + 1] == "9"
    assert any("your --ckpt-step 9 is kept" in n for n in plan["notes"])
