"""The FSDP layouts that fit: fsdp-h200 and fsdp-80gb, derived from the faithful `fsdp` recipe.

Each is a declared difference from the faithful recipe, fits by the planner
(host memory included), is accepted by slime's own parser at the pins, and
is what `train --recipe fsdp` names where the faithful recipe does not fit.
"""

import json

import pytest

from runner import planner
from runner.planner.hardware import GPU_PRESETS_GIB
from runner.recipes import RECIPES
from runner.slime_args.render import recipe_flags, train_flags
from tests.conftest import run_cli, unused_short_path
from tests.gpu_recordings import record
from tests.hf_fixtures import make_base_folder
from tests.slime_parser import parse_with_slime

H100, H200 = GPU_PRESETS_GIB["h100"], GPU_PRESETS_GIB["h200"]
FAITHFUL, H200_RECIPE, GB80_RECIPE = RECIPES["fsdp"], RECIPES["fsdp-h200"], RECIPES["fsdp-80gb"]


def changed_flags(a, b) -> set[str]:
    fa, fb = recipe_flags(a, "/root").as_dict(), recipe_flags(b, "/root").as_dict()
    return {k for k in set(fa) | set(fb) if fa.get(k) != fb.get(k)}


def report(recipe, gib, host=None):
    return planner.plan_for(recipe, train_flags(recipe, "/root"), gib, host_memory_gib=host)


def test_derived_recipes_differ_from_the_script_only_where_declared():
    assert changed_flags(FAITHFUL, H200_RECIPE) == {"fsdp-cpu-offload"}
    assert changed_flags(FAITHFUL, GB80_RECIPE) == {
        "fsdp-cpu-offload", "actor-num-gpus-per-node", "rollout-num-gpus", "rollout-num-gpus-per-engine",
    }
    for r in (H200_RECIPE, GB80_RECIPE):
        assert r.status == "derived" and r.derived_from == "fsdp" and r.source == FAITHFUL.source
    assert FAITHFUL.status == "faithful" and FAITHFUL.derived_from is None


def test_faithful_fsdp_still_does_not_fit():
    for gib in (H100, H200):
        rep = report(FAITHFUL, gib, host=2000)
        assert not rep.fits
        assert any("training GPU (fsdp)" in r for r in rep.reasons())


@pytest.mark.parametrize("recipe,gib,host", [(H200_RECIPE, H200, 1551.7), (GB80_RECIPE, H100, 1256.9),
                                             (GB80_RECIPE, H200, 1256.9)])
def test_derived_recipe_fits_with_the_host_memory_it_states(recipe, gib, host):
    rep = report(recipe, gib, host=2000)
    assert rep.fits, rep.reasons()
    node = next(r for r in rep.roles if r.kind == "host")
    assert node.total_gib == pytest.approx(host, abs=0.1)
    assert f"{round(host)} GiB" in " ".join(recipe.notes)
    # One GiB less host memory than the plan states is refused.
    assert not report(recipe, gib, host=node.total_gib - 1).fits


def test_h200_recipe_does_not_fit_80gb_and_says_why():
    rep = report(H200_RECIPE, H100)
    assert not rep.fits
    assert any("rollout" in r and "refuses to start" in r for r in rep.reasons())


def test_offloaded_state_is_on_the_host_not_the_gpu():
    rep = report(GB80_RECIPE, H100, host=2000)
    train = next(r for r in rep.roles if r.name == "training GPU (fsdp)")
    load = next(r for r in rep.roles if r.name == "training GPU (fsdp), model load")
    host = next(r for r in rep.roles if r.kind == "host")
    assert next(t for t in train.terms if t.name.startswith("sharded")).gib == 0
    params = rep.params["total"]
    assert next(t for t in host.terms if t.name.startswith("CPU-offloaded")).gib == pytest.approx(
        16 * params / 2**30)
    # While slime loads the checkpoint, CPUOffloadPolicy sends each shard back to pinned host memory as
    # FSDP moves it (reset_sharded_param): one tensor's shard at a time, not the rank's whole fp32 shard.
    biggest = 512 * 2 * 512 * 2048  # a layer's fused gate/up experts
    assert next(t for t in load.terms if t.name == "fp32 shard in transit").gib == pytest.approx(
        4 * biggest / 4 / 2**30)
    assert load.total_gib < 10
    # Without offload the whole fp32 shard is on the GPU while the checkpoint is broadcast.
    faithful = report(FAITHFUL, H200, host=2000)
    load = next(r for r in faithful.roles if r.name == "training GPU (fsdp), model load")
    assert next(t for t in load.terms if t.name == "fp32 shard of the model").gib == pytest.approx(
        4 * params / 6 / 2**30)


def test_colocated_offload_keeps_the_trainer_cache_through_the_weight_sync():
    """slime 3d7599aa: under --fsdp-cpu-offload the actor turns offload-train off, the driver still calls
    offload() (a no-op then) instead of clear_memory(), so sglang reloads its weights beside the trainer's
    cache at its training peak. The colocated layout that fits 80 GB otherwise fails there."""
    flags = train_flags(GB80_RECIPE, "/root")
    flags.set("colocate")
    for name in ("actor-num-gpus-per-node", "rollout-num-gpus-per-engine"):
        flags.set(name, "8")
    flags.drop("rollout-num-gpus")
    for name, value in (("sglang-ep-size", "8"), ("rollout-batch-size", "8"), ("global-batch-size", "24")):
        flags.set(name, value)
    rep = planner.plan_for(GB80_RECIPE, flags, H100, host_memory_gib=2000)
    roles = {r.name: r for r in rep.roles}
    assert roles["colocated GPU, training phase"].fits and roles["colocated GPU, rollout phase"].fits
    sync = roles["colocated GPU, weight sync"]
    train = roles["colocated GPU, training phase"]
    cache = next(t for t in sync.terms if t.name.startswith("trainer's CUDA cache"))
    assert cache.gib == pytest.approx(train.total_gib - 1.5)  # the training terms, without paused sglang
    assert not sync.fits and not rep.fits
    assert any("weight sync" in r for r in rep.reasons())


def test_fsdp_batch_must_divide_over_the_ranks():
    flags = train_flags(GB80_RECIPE, "/root")
    flags.set("global-batch-size", "6")
    rep = planner.plan_for(GB80_RECIPE, flags, H100)
    assert any("--global-batch-size 6 is not divisible by the 4 FSDP" in t for t in rep.topology_problems)


def test_plan_cli_shows_the_derived_recipes():
    r = run_cli("plan", "--recipe", "fsdp-80gb", "--gpu", "h100", "--host-memory", "1400")
    assert r.returncode == 0, r.stderr
    assert "[derived: our layout, not yet run at full scale]" in r.stdout
    assert "verdict: FITS" in r.stdout
    r = run_cli("plan", "--recipe", "fsdp", "--gpu", "h200", "--host-memory", "1400")
    assert "verdict: DOES NOT FIT" in r.stdout


@pytest.mark.parametrize("gpu,mib,expected", [("NVIDIA H100 80GB HBM3", 81559, "fsdp-80gb"),
                                              ("NVIDIA H200", 143771, "fsdp-h200")])
def test_train_fsdp_names_the_derived_recipe_that_fits(tmp_path, gpu, mib, expected):
    base = make_base_folder(tmp_path / "models")
    slime = tmp_path / "slime"
    slime.mkdir()
    (slime / "train.py").write_text("")
    (tmp_path / "meg" / "megatron").mkdir(parents=True)
    temp = unused_short_path()
    r = run_cli("train", "--recipe", "fsdp", "--base-folder", str(base), "--slime-dir", str(slime),
                "--megatron-dir", str(tmp_path / "meg"), "--ray-temp-dir", str(temp),
                env=record(tmp_path / "gpus", 8, name=gpu, mib=mib))
    assert r.returncode == 2, r.stderr
    errors = [line for line in r.stderr.splitlines() if line.startswith("error: ")]
    assert any("memory plan: training GPU (fsdp)" in e for e in errors), r.stderr
    assert any(f"run `train --recipe {expected}`" in e for e in errors), r.stderr
    assert not temp.exists()


PARSED = ["train_backend", "fsdp_cpu_offload", "colocate", "offload_train", "offload_rollout",
          "actor_num_gpus_per_node", "rollout_num_gpus", "rollout_num_gpus_per_engine", "sglang_ep_size",
          "sglang_mem_fraction_static", "rollout_batch_size", "n_samples_per_prompt", "global_batch_size",
          "gradient_checkpointing", "micro_batch_size", "lr", "use_kl_loss", "kl_coef"]


def test_slime_parser_accepts_the_fsdp_recipes(tmp_path):
    """slime 3d7599aa's parse_args (+ sglang 0.5.6.post1 server args) on the rendered argv."""
    names = ("fsdp", "fsdp-h200", "fsdp-80gb")
    cases = {n: train_flags(RECIPES[n], str(tmp_path / "base")).argv() for n in names}
    cases["typo"] = cases["fsdp-80gb"] + ["--fsdp-cpu-offlaod"]  # the parser is real: it refuses this
    out = parse_with_slime(cases, PARSED, tmp_path)
    assert "unrecognized arguments: --fsdp-cpu-offlaod" in out["typo"]["error"], out["typo"]
    parsed = {n: out[n].get("args") or pytest.fail(f"{n}: {out[n]}") for n in names}
    base = {"train_backend": "fsdp", "gradient_checkpointing": True, "micro_batch_size": 1, "lr": 1e-6,
            "use_kl_loss": False, "kl_coef": 0.0, "n_samples_per_prompt": 3, "sglang_mem_fraction_static": 0.8}
    for n in names:
        assert {k: parsed[n][k] for k in base} == base, n
    assert parsed["fsdp"]["fsdp_cpu_offload"] is False
    assert {k: parsed["fsdp-h200"][k] for k in ("fsdp_cpu_offload", "colocate", "offload_train",
                                                 "actor_num_gpus_per_node", "rollout_num_gpus",
                                                 "rollout_num_gpus_per_engine", "global_batch_size")} == {
        "fsdp_cpu_offload": True, "colocate": False, "offload_train": False, "actor_num_gpus_per_node": 6,
        "rollout_num_gpus": 2, "rollout_num_gpus_per_engine": 2, "global_batch_size": 12}
    # Not colocated: slime's parser leaves offload-train off, so the driver never calls offload() between
    # phases (the colocated variant's weight-sync problem does not arise).
    assert {k: parsed["fsdp-80gb"][k] for k in ("fsdp_cpu_offload", "colocate", "offload_train", "offload_rollout",
                                                 "actor_num_gpus_per_node", "rollout_num_gpus",
                                                 "rollout_num_gpus_per_engine", "sglang_ep_size",
                                                 "rollout_batch_size", "global_batch_size")} == {
        "fsdp_cpu_offload": True, "colocate": False, "offload_train": False, "offload_rollout": False,
        "actor_num_gpus_per_node": 4, "rollout_num_gpus": 4, "rollout_num_gpus_per_engine": 4,
        "sglang_ep_size": 1, "rollout_batch_size": 4, "global_batch_size": 12}
    json.dumps(parsed)  # plain values only
