"""runner.planner: parameter counts, topology errors, per-role memory verdicts, JSON shape."""

from __future__ import annotations

import argparse
import json

import pytest

from runner import planner
from runner.flags import FlagSet
from runner.planner import megatron as mg
from runner.planner import sglang as sg
from runner.planner.checkpoint import CheckpointError, compare_with_index, index_total_size, load_architecture
from runner.planner.hardware import GPU_PRESETS_GIB
from runner.planner.params import count_params
from runner.planner.report import DOES_NOT_FIT, FITS
from runner.planner.smoke_compare import compare_run, load_runs, render, smoke_setup
from runner.recipes import RECIPES
from runner.recipes.base import Layout
from runner.recipes.megatron_8gpu_80gb import RECIPE as FITTED
from runner.recipes.qwen3_next import QWEN3_NEXT_80B as A
from runner.slime_args.render import Overrides, train_flags

H100, H200 = GPU_PRESETS_GIB["h100"], GPU_PRESETS_GIB["h200"]


def flags_of(recipe, overrides: Overrides = Overrides()) -> FlagSet:
    return train_flags(recipe, "/base", overrides)


def report(recipe, gpu_gib, flags=None, host=None):
    return planner.plan_for(recipe, flags if flags is not None else flags_of(recipe), gpu_gib,
                            host_memory_gib=host)


def role(rep, prefix):
    return next(r for r in rep.roles if r.name.startswith(prefix))


def term(r, name):
    return next(t for t in r.terms if t.name.startswith(name))


# ------------------------------------------------------------------ parameter counts

def test_total_params_match_published_80b():
    c = count_params(A)
    assert c.by_component["routed_experts"] == 48 * 512 * 3 * 2048 * 512
    assert c.by_component["embedding"] == c.by_component["output_head"] == 151936 * 2048
    assert c.by_component["gated_attention"] == 12 * (2048 * 16 * 256 * 2 + 2 * 2048 * 2 * 256 + 16 * 256 * 2048
                                                      + 2 * 256)
    assert c.total == sum(c.by_component.values()) == 79_674_391_296  # transformers' meta-device count
    assert abs(c.total - 80e9) / 80e9 < 0.005


def test_active_params_match_published_3b():
    c = count_params(A)
    # 10 of 512 routed experts per token plus every non-expert weight.
    assert c.active == c.total - c.by_component["routed_experts"] + 48 * 10 * 3 * 2048 * 512
    assert 2.9e9 < c.active_without_embeddings < 3.4e9
    assert c.active < 4e9


def test_checkpoint_bytes_include_mtp_block():
    c = count_params(A, mtp_layers=1)
    assert c.mtp == 1_650_471_424
    assert compare_with_index(c, None)["estimated_bytes"] == 2 * (c.total + c.mtp)
    assert count_params(A, mtp_layers=0).mtp == 0


def test_params_agree_with_transformers_when_available():
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    if not hasattr(transformers, "Qwen3NextConfig"):
        pytest.skip("transformers without Qwen3-Next")
    cfg = transformers.Qwen3NextConfig(num_hidden_layers=4, num_experts=8, vocab_size=1000, hidden_size=256,
                                       moe_intermediate_size=64, shared_expert_intermediate_size=64)
    with torch.device("meta"):
        model = transformers.Qwen3NextForCausalLM(cfg)
    ours = count_params(type(A).from_hf_config(cfg.to_dict()), mtp_layers=0).total
    assert ours == sum(p.numel() for p in model.parameters())


# ------------------------------------------------------------------ topology

@pytest.mark.parametrize("overrides, expected", [
    ({"pipeline-model-parallel-size": "5"}, "48 layers are not divisible by --pipeline-model-parallel-size 5"),
    ({"expert-model-parallel-size": "3"}, "512 experts are not divisible by --expert-model-parallel-size 3"),
    ({"tensor-model-parallel-size": "4"}, "does not divide the 16 attention heads and 2 KV groups"),
    ({"pipeline-model-parallel-size": "4"}, "6 training GPUs are not divisible by TP x PP x CP"),
    ({"rollout-num-gpus-per-engine": "4"}, "rollout GPUs (2) are not divisible by --rollout-num-gpus-per-engine 4"),
    ({"actor-num-gpus-per-node": "9"}, "exceeds the 8 GPUs per node"),
    ({"pipeline-model-parallel-size": "2", "expert-model-parallel-size": "4"}, "EP x ETP = 4 x 1 does not divide"),
    ({"sglang-ep-size": "4"}, "is not divisible by --sglang-ep-size 4"),
])
def test_each_divisibility_error_blocks_the_plan(overrides, expected):
    recipe = RECIPES["megatron-8gpu"]
    f = flags_of(recipe)
    for k, v in overrides.items():
        f.set(k, v)
    rep = report(recipe, H200, f)
    assert any(expected in p for p in rep.topology_problems), rep.topology_problems
    assert not rep.fits
    assert any(expected in r for r in rep.reasons())


def test_faithful_recipes_have_consistent_topology():
    for recipe in RECIPES.values():
        assert report(recipe, H200).topology_problems == ()
    assert report(FITTED, H100).topology_problems == ()


# ------------------------------------------------------------------ verdicts

def test_megatron_8gpu_on_80gb_reports_the_rollout_shortfall():
    rep = report(RECIPES["megatron-8gpu"], H100)
    roll = role(rep, "rollout GPU")
    assert roll.verdict == DOES_NOT_FIT
    assert any("mem-fraction-static 0.8" in p and "refuses to start" in p for p in roll.problems)
    assert 10 < float(roll.info["KV pool shortfall"].split()[0]) < 13
    # ~150 GiB of bf16 weights over sglang TP2.
    assert 70 < term(roll, "weights").gib < 78
    assert not rep.fits


def test_megatron_8gpu_training_needs_bf16_grads_on_80gb():
    recipe = RECIPES["megatron-8gpu"]
    train = role(report(recipe, H100), "training GPU")
    assert train.verdict == DOES_NOT_FIT  # fp32 gradient buffer of a 13.5B-parameter PP stage
    low = role(report(recipe, H100, flags_of(recipe, Overrides(low_memory=True))), "training GPU")
    assert low.verdict == FITS
    assert term(low, "gradients").gib == pytest.approx(term(train, "gradients").gib / 2)


def test_megatron_8gpu_fits_h200():
    rep = report(RECIPES["megatron-8gpu"], H200, host=2000)
    assert rep.fits, rep.reasons()
    roll = role(rep, "rollout GPU")
    assert roll.info["concurrent requests (state slots)"] > 64  # 16 prompts x 4 samples in flight


def test_fitted_layout_passes_on_80gb():
    rep = report(FITTED, H100, host=1900)
    assert rep.fits, rep.reasons()
    assert rep.recipe_status == "derived"
    train, roll = role(rep, "colocated GPU, training"), role(rep, "colocated GPU, rollout")
    assert train.headroom_gib > 5 and roll.headroom_gib > 5
    # The trainer sleeping during rollout is accounted for.
    assert term(roll, "paused trainer").gib > 0
    f = flags_of(FITTED)
    assert f.has("colocate") and f.has("grad-reduce-in-bf16") and not f.has("accumulate-allreduce-grads-in-fp32")


def test_fitted_layout_host_memory_is_checked():
    rep = report(FITTED, H100, host=1024)
    host = role(rep, "host memory")
    assert host.verdict == DOES_NOT_FIT and not rep.fits
    assert role(report(FITTED, H100), "host memory").verdict == "not checked"


def test_multinode_fits_80gb_and_fsdp_does_not_fit_one_node():
    assert report(RECIPES["megatron-multinode"], H100, host=2000).fits
    fs = report(RECIPES["fsdp"], H200)
    assert role(fs, "training GPU").verdict == DOES_NOT_FIT
    assert term(role(fs, "training GPU"), "sharded params").gib == pytest.approx(
        4 * count_params(A).total / 6 / 2**30)


def test_fits_gives_reasons():
    ok, reasons = planner.fits(RECIPES["megatron-8gpu"], flags_of(RECIPES["megatron-8gpu"]), H100)
    assert not ok and any("rollout" in r for r in reasons)
    ok, reasons = planner.fits(FITTED, flags_of(FITTED), H100)
    assert ok and reasons == []


# ------------------------------------------------------------------ memory terms follow the flags

def test_gradient_dtype_rules():
    f = FlagSet()
    assert mg.grad_bytes(f)[0] == 4  # Megatron forces fp32 accumulation for bf16
    f.set("grad-reduce-in-bf16")
    f.set("accumulate-allreduce-grads-in-fp32")
    assert mg.grad_bytes(f)[0] == 2  # --grad-reduce-in-bf16 wins in validate_args


def test_optimizer_offload_and_precision_aware():
    f = FlagSet()
    assert mg.optimizer_gpu_bytes(f)[0] == 12
    f.set("optimizer-cpu-offload")
    assert mg.optimizer_gpu_bytes(f)[0] == 4  # fp32 main-param shard stays on the GPU
    f.set("use-precision-aware-optimizer")
    assert mg.optimizer_gpu_bytes(f)[0] == 0
    assert mg.optimizer_cpu_bytes(f) == 16


def test_more_tokens_per_gpu_more_activation_memory():
    recipe = RECIPES["megatron-8gpu"]
    small = role(report(recipe, H200), "training GPU").total_gib
    f = flags_of(recipe)
    f.set("max-tokens-per-gpu", "8192")
    big = role(report(recipe, H200, f), "training GPU").total_gib
    assert big > small + 10  # logits alone grow by 3 x 4 GiB


def test_sglang_pool_is_static_budget_minus_weights():
    f = FlagSet()
    f.set("rollout-num-gpus-per-engine", "8")
    f.set("sglang-mem-fraction-static", "0.8")
    terms, problems, _ = sg.rollout_gpu(f, A, 80.0, mtp_layers=0)
    by = {t.name: t.gib for t in terms}
    pool = 0.8 * 80.0 - sg.SGLANG_CONTEXT_GIB - by["weights (bf16)"]
    assert problems == []
    assert by["KV cache (full attention)"] + by["Gated DeltaNet state pool"] == pytest.approx(pool)
    assert by["Gated DeltaNet state pool"] / by["KV cache (full attention)"] == pytest.approx(0.9)
    # 36 GDN layers x (32 heads x 128 x 128 fp32 + 8192 x 3 bf16 conv) / TP8
    assert sg.state_bytes_per_request(A, 8) == 36 * (32 * 128 * 128 * 4 + 8192 * 3 * 2) / 8


# ------------------------------------------------------------------ checkpoint and JSON

def test_reads_config_and_index(tmp_path):
    cfg = {"model_type": "qwen3_next", "num_hidden_layers": 8, "num_experts": 32, "mtp_num_hidden_layers": 1,
           "torch_dtype": "bfloat16"}
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    arch, mtp, facts = load_architecture(str(tmp_path))
    assert arch.num_hidden_layers == 8 and arch.num_experts == 32 and mtp == 1
    counts = count_params(arch, mtp)
    size = 2 * counts.checkpoint_total
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps({"metadata": {"total_size": size}}))
    assert index_total_size(str(tmp_path)) == size
    assert compare_with_index(counts, size)["relative_difference"] == 0
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "llama"}))
    with pytest.raises(CheckpointError, match="qwen3_next"):
        load_architecture(str(tmp_path))


def _args(*argv):
    p = argparse.ArgumentParser()
    planner.add_arguments(p)
    return p.parse_args(list(argv))


def test_run_plan_json_shape():
    recipe = RECIPES["megatron-8gpu"]
    text, data, ok = planner.run_plan(_args("--gpu", "h100", "--host-memory", "2000"), recipe, flags_of(recipe), None)
    assert ok is False and data["fits"] is False
    json.dumps(data)  # serialisable
    assert {"recipe", "recipe_status", "backend", "gpu_memory_gib", "host_memory_gib", "fits", "reasons", "params",
            "topology_problems", "roles", "checkpoint", "assumptions"} <= set(data)
    assert [r["name"] for r in data["roles"]] == ["training GPU (megatron)", "rollout GPU (sglang)",
                                                  "host memory per node"]
    for r in data["roles"]:
        assert {"terms", "total_gib", "capacity_gib", "headroom_gib", "verdict", "problems"} <= set(r)
        assert r["total_gib"] == pytest.approx(sum(t["gib"] for t in r["terms"]), abs=0.01)
    assert data["params"]["total"] == count_params(A).total
    assert "DOES NOT FIT" in text and "rollout GPU (sglang)" in text


def test_run_plan_gpu_choice_and_detected_memory():
    recipe = RECIPES["megatron-8gpu"]
    _, data, ok = planner.run_plan(_args("--gpu-memory", "141"), recipe, flags_of(recipe), 79.6)
    assert data["gpu_memory_gib"] == 141 and ok
    _, data, _ = planner.run_plan(_args(), recipe, flags_of(recipe), 139.8)
    assert data["gpu_memory_gib"] == pytest.approx(139.8)
    text, data, ok = planner.run_plan(_args(), FITTED, flags_of(FITTED), None)
    assert "also" in data and "H200" in text and "derived" in text


def test_summary_covers_every_recipe_and_gpu():
    pairs = [(r, flags_of(r)) for r in list(RECIPES.values()) + [FITTED]]
    text = planner.plan_summary(pairs)
    for r, _ in pairs:
        assert r.name in text
    assert text.count("H100") == len(pairs) and text.count("H200") == len(pairs)


# ------------------------------------------------------------------ smoke comparison

def _smoke_run(measured: int) -> dict:
    cfg = {"hidden_size": 2048, "num_hidden_layers": 8, "num_experts": 32, "num_experts_per_tok": 10,
           "vocab_size": 151936, "model_type": "qwen3_next"}
    return {"model_config": cfg, "knobs": {"seq_len": 4096, "micro_batch": 1}, "world_size": 1,
            "gpu_name": "NVIDIA H100 80GB HBM3", "peak_mem_allocated_bytes": [measured, measured - 5]}


def test_smoke_comparison(tmp_path):
    run = _smoke_run(40 * 2**30)
    arch, setup = smoke_setup(run)
    assert setup.tokens == 4096 and setup.ranks == 1 and not setup.gradient_checkpointing
    row = compare_run(run)
    assert row["measured_gib"] == pytest.approx(40.0)
    params = count_params(arch, mtp_layers=0).total
    sharded = sum(t["gib"] for t in row["terms"] if t["name"] in ("sharded params", "sharded grads", "Adam moments"))
    assert sharded == pytest.approx(16 * params / 2**30, rel=1e-3)  # fp32 params, grads, AdamW moments
    assert row["estimate_over_measured"] == pytest.approx(row["estimated_gib"] / 40.0)
    for shape in ([run], {"runs": [run]}, run):
        (tmp_path / "s.json").write_text(json.dumps(shape))
        assert len(load_runs(tmp_path / "s.json")) == 1


def test_smoke_comparison_with_cpu_offload():
    plain = compare_run(_smoke_run(40 * 2**30))
    run = {**_smoke_run(15 * 2**30), "fsdp_cpu_offload": True, "host_rss_base_bytes": [2 * 2**30, 2 * 2**30],
           "host_rss_end_bytes": [30 * 2**30, 29 * 2**30], "host_rss_peak_bytes": [37 * 2**30, 36 * 2**30]}
    row = compare_run(run)
    params = count_params(smoke_setup(run)[0], mtp_layers=0).total
    assert row["cpu_offload"] and "CPU offload" in row["label"]
    names = {t["name"] for t in row["terms"]}
    assert "sharded params" not in names and "fp32 shard copied in for all-gather" in names
    # The GPU loses the 16 B/param of sharded state and gains one layer's fp32 shard in flight.
    assert plain["estimated_gib"] - row["estimated_gib"] == pytest.approx(16 * params / 2**30, rel=0.05)
    assert row["host_measured_gib"] == pytest.approx(28.0)
    # The fp32 state, plus the pinned allocator's power-of-two blocks for params and grads (tests/test_pinned_host.py).
    assert row["host_state_gib"] == pytest.approx(16 * params / 2**30)
    assert row["host_estimated_gib"] == pytest.approx(row["host_state_gib"] + row["host_rounding_gib"])
    assert 0 < row["host_rounding_gib"] < 0.2 * row["host_state_gib"]
    assert "| host memory held per rank" in render([row])


def test_layout_from_fitted_flags_matches_recipe():
    f = flags_of(FITTED)
    lay = Layout.from_flags(f, nodes=1, gpus_per_node=8)
    assert lay.colocate and lay.rollout_gpu_count == 8 and lay.gpus_per_engine == 8
