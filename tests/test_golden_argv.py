"""The rendered train.py argv equals what slime's scripts pass (argparse semantics).

Golden data: tests/data/slime_argv/<recipe>.json, recorded by
tools/capture_slime_argv.py from THUDM/slime at the pinned commit (the
scripts run with stubbed ray/ssh/pkill/nvidia-smi).

The recipes are compared flag for flag. What a run passes differs from the
script in exactly one, deliberate place: --load and --save point into the
run's own checkpoint folder (runner.runs: a fresh run never continues another
run's checkpoint) instead of the scripts' shared
$BASE_FOLDER/Qwen3-Next-80B-A3B-Thinking_slime/. The last test pins that
exception down.
"""

import json

import pytest

from runner.flags import Flag, FlagSet
from runner.recipes import RECIPES
from runner.recipes.base import SLIME_COMMIT
from runner.runs.setup import checkpoint_layer
from runner.slime_args.render import Overrides, recipe_flags, runtime_env_vars, train_flags
from tests.conftest import DATA

GOLDEN = {name: json.loads((DATA / "slime_argv" / f"{name}.json").read_text())
          for name in ("megatron-8gpu", "megatron-multinode", "fsdp")}


@pytest.mark.parametrize("name", sorted(GOLDEN))
def test_recipe_matches_script_flag_for_flag(name):
    golden = GOLDEN[name]
    recipe = RECIPES[name]
    assert golden["source"]["commit"] == SLIME_COMMIT == recipe.source.commit
    assert golden["source"]["file"] == recipe.source.file
    assert golden["entrypoint"][:2] == ["python3", "train.py"]
    expected = FlagSet.parse(golden["entrypoint"][2:])
    rendered = recipe_flags(recipe, golden["base_folder"])
    missing = set(expected.as_dict()) - set(rendered.as_dict())
    extra = set(rendered.as_dict()) - set(expected.as_dict())
    assert not missing and not extra, (missing, extra)
    for f in expected:
        assert rendered.get(f.name) == f.values, f.name


def test_repeated_flag_resolves_like_argparse():
    # multinode passes alltoall (model file) then flex (MISC_ARGS): flex wins.
    flags = recipe_flags(RECIPES["megatron-multinode"], "/root")
    assert flags.get("moe-token-dispatcher-type") == ("flex",)
    assert flags.has("moe-enable-deepep")


def test_moe_layer_freq_is_one_literal_argument():
    argv = recipe_flags(RECIPES["megatron-8gpu"], "/root").argv()
    value = argv[argv.index("--moe-layer-freq") + 1]
    assert value == "[" + ",".join(["1"] * 48) + "]"


def test_base_folder_is_substituted_everywhere():
    flags = recipe_flags(RECIPES["megatron-8gpu"], "/data/ckpt")
    text = " ".join(flags.argv())
    assert "${BASE_FOLDER}" not in text
    assert flags.get("eval-prompt-data") == ("aime", "/data/ckpt/aime-2024/aime-2024.jsonl")
    assert flags.get("load") == ("/data/ckpt/Qwen3-Next-80B-A3B-Thinking_slime/",)


def test_runtime_env_fixes_the_scripts_json():
    # The multinode script's RUNTIME_ENV_JSON is invalid JSON (missing comma).
    with pytest.raises(json.JSONDecodeError):
        json.loads(GOLDEN["megatron-multinode"]["runtime_env_json_text"])
    script_env = json.loads(GOLDEN["megatron-8gpu"]["runtime_env_json_text"])["env_vars"]
    env = runtime_env_vars(RECIPES["megatron-8gpu"], megatron_dir="/root/Megatron-LM/", slime_dir="/root/slime",
                           master_addr="127.0.0.1", nccl_nvls_enable="0")
    # Every variable the script sets, plus slime itself on PYTHONPATH and PYTHONUNBUFFERED.
    assert set(script_env) <= set(env)
    assert env["PYTHONPATH"].split(":")[0] == script_env["PYTHONPATH"]
    assert env["PYTHONUNBUFFERED"] == "1"
    fsdp = runtime_env_vars(RECIPES["fsdp"], megatron_dir="/m", slime_dir="/s", master_addr="10.0.0.1",
                            nccl_nvls_enable="1")
    assert fsdp["PYTHONPATH"] == "/m:/s:/s/scripts"  # the FSDP script adds its scripts/ dir
    assert fsdp["no_proxy"] == "127.0.0.1,10.0.0.1"
    assert env["no_proxy"] == "127.0.0.1"  # the script's "127.0.0.1,127.0.0.1", once
    assert script_env["no_proxy"] == "127.0.0.1,127.0.0.1"


def test_low_memory_applies_the_seed_advice():
    flags = train_flags(RECIPES["megatron-8gpu"], "/root", Overrides(low_memory=True))
    assert not flags.has("accumulate-allreduce-grads-in-fp32")
    assert flags.has("grad-reduce-in-bf16")


def test_overrides_set_unset_and_extra_args_last_wins():
    flags = train_flags(RECIPES["megatron-8gpu"], "/root", Overrides(
        set_flags=(Flag("lr", ("2e-6",)), Flag("use-wandb")), unset=("balance-data",),
        extra_argv=("--lr", "3e-6", "--wandb-project", "p")))
    assert flags.get("lr") == ("3e-6",)
    assert flags.has("use-wandb") and not flags.has("balance-data")
    assert flags.get("wandb-project") == ("p",)


def test_derived_80gb_recipe_differs_from_the_script_only_where_declared():
    seed = recipe_flags(RECIPES["megatron-8gpu"], "/root").as_dict()
    derived = recipe_flags(RECIPES["megatron-8gpu-80gb"], "/root").as_dict()
    changed = {k for k in set(seed) | set(derived) if seed.get(k) != derived.get(k)}
    assert changed == {
        "actor-num-gpus-per-node", "colocate", "rollout-num-gpus", "rollout-num-gpus-per-engine",
        "pipeline-model-parallel-size", "expert-model-parallel-size", "sglang-ep-size",
        "accumulate-allreduce-grads-in-fp32", "grad-reduce-in-bf16",
    }
    assert RECIPES["megatron-8gpu-80gb"].status == "derived"


@pytest.mark.parametrize("name", sorted(GOLDEN))
def test_a_run_differs_from_the_script_only_in_its_checkpoint_folder(name):
    golden = GOLDEN[name]
    script = FlagSet.parse(golden["entrypoint"][2:])
    folder = "/data/runs/megatron-8gpu-20261129-013012-a3f2/checkpoints"
    run = train_flags(RECIPES[name], golden["base_folder"], before=(checkpoint_layer(folder),))
    changed = {k for k in set(script.as_dict()) | set(run.as_dict()) if script.get(k) != run.get(k)}
    assert changed == {"load", "save"}
    assert script.get("load") == script.get("save") == (f"{golden['base_folder']}/Qwen3-Next-80B-A3B-Thinking_slime/",)
    assert run.get("load") == run.get("save") == (folder,)
    # The user's own overrides still come last and win, the folder included.
    mine = train_flags(RECIPES[name], golden["base_folder"], Overrides(set_flags=(Flag("save", ("/mine",)),)),
                       before=(checkpoint_layer(folder),))
    assert mine.get("save") == ("/mine",) and mine.get("load") == (folder,)
