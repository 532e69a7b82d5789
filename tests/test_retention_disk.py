"""Disk: a checkpoint's size from the model and backend, --keep-checkpoints' pruning of real
folders, the free-disk preflight through the real CLI, and the low-disk warning."""

import json
import shutil

import pytest

from runner.flags import FlagSet
from runner.planner.params import count_params
from runner.planner.saved import checkpoint_size, save_plan, saves_between
from runner.recipes.qwen3_next import QWEN3_NEXT_80B
from runner.runs.disk import disk_problem, free_bytes, low_disk_warning
from runner.runs.retention import prune, to_prune
from tests.checkpoint_folders import TRACKER, save
from tests.conftest import run_cli
from tests.test_runs import _train

# The train tests here plan on a machine with 8 H100s and no --force (tests/machine.py).
pytestmark = pytest.mark.machine(gpu="h100", force=False)

COUNTS = count_params(QWEN3_NEXT_80B, 1)


def test_checkpoint_size_per_backend_and_flags():
    megatron = checkpoint_size("megatron", FlagSet(), COUNTS)
    assert megatron.total == 14 * COUNTS.total  # bf16 weights + fp32 main params, Adam m and v
    assert 1.0e12 < megatron.total < 1.2e12  # "about a terabyte each"
    assert checkpoint_size("megatron", FlagSet.parse(["--no-save-optim"]), COUNTS).total == 2 * COUNTS.total
    aware = FlagSet.parse(["--use-precision-aware-optimizer", "--exp-avg-dtype", "bf16", "--exp-avg-sq-dtype", "bf16"])
    assert checkpoint_size("megatron", aware, COUNTS).total == (2 + 4 + 2 + 2) * COUNTS.total
    mtp = checkpoint_size("megatron", FlagSet.parse(["--mtp-num-layers", "1"]), COUNTS)
    assert mtp.total == 14 * COUNTS.checkpoint_total
    assert checkpoint_size("fsdp", FlagSet(), COUNTS).total == 12 * COUNTS.total  # fp32 model + AdamW m, v


def test_how_many_saves():
    assert saves_between(0, 300, 20) == 15
    assert saves_between(0, 10, 3) == 4  # 2, 5, 8 and the last rollout 9
    assert saves_between(20, 300, 20) == 14  # resumed after iteration 19
    assert saves_between(0, 10, None) == 0
    flags = FlagSet.parse(["--num-rollout", "300", "--save-interval", "20"])
    assert save_plan("megatron", flags, COUNTS).kept == 15
    assert save_plan("megatron", flags, COUNTS, keep=2).kept == 3  # the two newest plus the one being written
    assert save_plan("megatron", flags, COUNTS, keep=2, existing=5).kept == 1


def test_plan_shows_the_checkpoint_size():
    r = run_cli("plan", "--recipe", "megatron-8gpu", "--gpu", "h100", "--json")
    saves = json.loads(r.stdout)["saves"]
    assert saves["checkpoint"]["bytes"] == 14 * COUNTS.total and saves["saves"] == 15
    text = run_cli("plan", "--recipe", "fsdp-h200", "--gpu", "h200").stdout
    assert "saves: one checkpoint is 956.09 GB (model/ (fp32 weights)" in text and "this run saves 15" in text


def test_prune_keeps_the_newest_complete_and_never_the_tracker_or_a_save_in_progress(tmp_path):
    save(tmp_path, 9, data_state=False)  # an old incomplete one: a person's call, never deleted
    for rollout in (19, 39, 59, 79):
        save(tmp_path, rollout)
    save(tmp_path, 99, finished=False)  # being written: newer than the tracker
    assert (tmp_path / TRACKER).read_text() == "79"
    assert prune(tmp_path, None, global_dataset=True) == []  # K not given: nothing, ever
    assert prune(tmp_path, 2, global_dataset=True) == [19, 39]
    left = sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("iter_"))
    assert left == ["iter_0000009", "iter_0000059", "iter_0000079", "iter_0000099"]
    states = sorted(p.name for p in (tmp_path / "rollout").iterdir())
    assert states == ["global_dataset_state_dict_59.pt", "global_dataset_state_dict_79.pt"]
    assert not list(tmp_path.glob(".iter_*"))
    assert prune(tmp_path, 1, global_dataset=True) == [59]
    assert prune(tmp_path, 1, global_dataset=True) == []  # the tracker's iteration stays
    with pytest.raises(ValueError):
        to_prune(tmp_path, 0, global_dataset=True)


def test_prune_after_a_fallback_keeps_the_checkpoint_resumed_from(tmp_path):
    save(tmp_path, 19, "fsdp")
    save(tmp_path, 39, "fsdp")
    save(tmp_path, 59, "fsdp", data_state=False)  # the tracker's, incomplete: the run resumed from iter_40
    assert prune(tmp_path, 1, global_dataset=True) == [20]
    assert (tmp_path / "iter_0000040" / "meta.json").is_file() and (tmp_path / "iter_0000060").is_dir()
    assert not (tmp_path / "rollout" / "global_dataset_state_dict_19.pt").exists()  # FSDP: iter_20's state


def test_an_interrupted_prune_is_finished_next_time(tmp_path):
    for rollout in (19, 39, 59):
        save(tmp_path, rollout)
    (tmp_path / "iter_0000019").rename(tmp_path / ".iter_0000019.deleting")  # killed after the rename
    assert prune(tmp_path, 5, global_dataset=True) == []
    assert not (tmp_path / ".iter_0000019.deleting").exists()
    assert not (tmp_path / "rollout" / "global_dataset_state_dict_19.pt").exists()


def test_disk_problem_and_low_disk_warning_with_numbers(tmp_path):
    flags = FlagSet.parse(["--num-rollout", "100", "--save-interval", "20"])
    plan = save_plan("megatron", flags, COUNTS)
    each = plan.each.total
    assert disk_problem(tmp_path, plan, free=5 * each) is None
    line = disk_problem(tmp_path, plan, free=int(3.5 * each))
    assert line.startswith(f"disk: --save {tmp_path} has ") and "3 fit: pass --keep-checkpoints 2" in line
    assert "not even one checkpoint" in disk_problem(tmp_path, plan, free=each // 2)
    assert disk_problem(tmp_path, save_plan("megatron", flags, COUNTS, keep=2), free=int(3.5 * each)) is None
    assert low_disk_warning(tmp_path, each, free=2 * each) is None
    warning = low_disk_warning(tmp_path, each, free=each)
    assert warning.startswith("low disk: ") and "less than 1.5 x a checkpoint" in warning
    real = free_bytes(tmp_path / "not" / "yet")  # measured at the nearest existing parent
    assert real == shutil.disk_usage(tmp_path).free or abs(real - shutil.disk_usage(tmp_path).free) < 1 << 24
    assert low_disk_warning(tmp_path, 1) is None and low_disk_warning(tmp_path, 10 * real) is not None


def _size_the_model(machine, each_bytes: float) -> None:
    """Make the fixture's HF checkpoint claim a size whose Megatron checkpoints are each_bytes each."""
    index = machine["base"] / "Qwen3-Next-80B-A3B-Thinking" / "model.safetensors.index.json"
    data = json.loads(index.read_text())
    data["metadata"]["total_size"] = int(each_bytes / 14 * 2 * COUNTS.checkpoint_total / COUNTS.total)
    index.write_text(json.dumps(data))


def test_train_refuses_a_run_whose_checkpoints_cannot_fit_and_keep_checkpoints_fixes_it(machine):
    free = free_bytes(machine["base"])
    _size_the_model(machine, free / 4.4)  # 4 fit (with room for what others write meanwhile); the recipe saves 15
    refused = _train(machine, dry=False)
    assert refused.returncode == 2
    (line,) = [ln for ln in refused.stderr.splitlines() if ln.startswith("error: disk:")]
    assert "this run would write 15 (slime keeps every one) checkpoints" in line and "--keep-checkpoints 3" in line
    assert not (machine["base"] / "runs").exists()
    forced = _train(machine, "--force", dry=False)
    assert forced.returncode == 2 and "error: disk:" in forced.stderr  # --force is about the memory plan only
    plan = json.loads(_train(machine, "--keep-checkpoints", "1").stdout)
    assert not [p for p in plan["problems"] if p["message"].startswith("disk:")]
    (note,) = [n for n in plan["notes"] if n.startswith("saves: one checkpoint is")]
    assert "at most 2 new on disk at once (--keep-checkpoints 1" in note and "free at" in note
    bad = _train(machine, "--keep-checkpoints", "0")
    assert bad.returncode == 2 and "--keep-checkpoints: '0' is not a whole number of at least 1" in bad.stderr
