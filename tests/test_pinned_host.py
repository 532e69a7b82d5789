"""Host memory of FSDP2 CPU offload: padded shards in power-of-two pinned blocks (runner.planner.pinned).

Checked against: the 1 x H200 measurement in docs/smoke-runs.json (resident
growth of the offload run minus the plain run), real FSDP2 sharding of a
small Qwen3-Next under torchrun + gloo, and transformers' real model on the
meta device (the stack's 5.0.0rc0 with the 80B config; whatever transformers
the test extra installed with a small config).
"""

import json
import math
import os
import subprocess
import sys

import pytest

from conftest import REPO

from runner import planner
from runner.planner.hardware import GPU_PRESETS_GIB
from runner.planner.params import count_params
from runner.planner.pinned import offloaded_bytes, pinned_block_bytes, shard_rows
from runner.planner.shapes import parameter_shapes
from runner.planner.smoke_compare import compare_file, offload_costs, render
from runner.recipes import RECIPES
from runner.recipes.qwen3_next import QWEN3_NEXT_80B, Qwen3NextArchitecture
from runner.slime_args.render import train_flags

GIB = 2**30
SMOKE_RUNS = REPO / "docs" / "smoke-runs.json"
OFFLOAD_RUN = "smoke-h200-1gpu-mb2-cpu-offload"
OFFLOAD_RUN_2 = "smoke-h200-1gpu-mb2-run2-cpu-offload"

# A small Qwen3-Next whose dims do not divide by 3 ranks: 8 experts (3, 3, 2 rows), a vocabulary of
# 1000 (334, 334, 332), the shared-expert gate's single row (1, 0, 0), one full-attention layer in 4.
SMALL = {"hidden_size": 64, "num_hidden_layers": 4, "num_attention_heads": 4, "num_key_value_heads": 2,
         "head_dim": 16, "linear_num_key_heads": 2, "linear_num_value_heads": 4, "linear_key_head_dim": 16,
         "linear_value_head_dim": 16, "linear_conv_kernel_dim": 4, "num_experts": 8, "num_experts_per_tok": 2,
         "moe_intermediate_size": 32, "shared_expert_intermediate_size": 32, "intermediate_size": 160,
         "vocab_size": 1000, "decoder_sparse_step": 1, "tie_word_embeddings": False,
         "layer_types": ["linear_attention"] * 3 + ["full_attention"]}


def _arch(cfg: dict) -> Qwen3NextArchitecture:
    return Qwen3NextArchitecture.from_hf_config(cfg)


# ---------------------------------------------------------------- the allocator and FSDP2's shards

@pytest.mark.parametrize("n,block", [(0, 0), (1, 1), (3, 4), (4, 4), (5, 8), (2**29, 2**29), (2**29 + 1, 2**30),
                                     (721_420_288, 2**30)])  # 86 rows of a fused gate/up projection, fp32
def test_pinned_block_is_the_next_power_of_two(n, block):
    assert pinned_block_bytes(n) == block


def test_shard_rows_follow_torch_chunk():
    torch = pytest.importorskip("torch")
    for dim0 in (1, 2, 5, 8, 10, 512, 1000):
        for ranks in (1, 2, 3, 4, 6, 8):
            chunks = list(torch.chunk(torch.empty(dim0), ranks))
            for rank in range(ranks):
                own = chunks[rank].numel() if rank < len(chunks) else 0
                assert shard_rows(dim0, ranks, rank) == (chunks[0].numel(), own), (dim0, ranks, rank)


def test_real_fsdp2_shards_are_padded_to_chunk_zero(tmp_path):
    """What fully_shard allocates per rank, read off a real 3-rank gloo run, is shard_rows' padded size."""
    pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    if not hasattr(transformers, "Qwen3NextConfig"):
        pytest.skip("transformers without Qwen3-Next")
    (tmp_path / "config.json").write_text(json.dumps(SMALL))
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "3",
                        str(REPO / "tests" / "fsdp_shard_probe.py"), str(tmp_path / "config.json"), str(tmp_path)],
                       capture_output=True, text=True, cwd=REPO, env=env, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank{i}.json").read_text()) for i in range(3)]
    shapes = ranks[0]["shapes"]
    uneven = empty = 0
    for out in ranks:
        for name, shard in out["shards"].items():
            padded, own = shard_rows(shapes[name][0], 3, out["rank"])
            rest = math.prod(shapes[name][1:])
            assert shard["own"] == own * rest, (out["rank"], name)
            assert shard["allocated"] == padded * rest, (out["rank"], name)
            assert shard["device"] == "cpu"
            uneven += own not in (0, padded)
            empty += own == 0
    assert uneven and empty  # the config exercises both kinds of short shard
    # The host bytes of those ranks, as the planner counts them, from the real shards.
    real = sum(pinned_block_bytes(4 * s["allocated"]) for out in ranks for s in out["shards"].values())
    assert offloaded_bytes([tuple(s) for s in shapes.values()], 3, range(3)).params == real


# ---------------------------------------------------------------- the shapes, against transformers

def test_shapes_add_up_to_the_parameter_count():
    for arch in (QWEN3_NEXT_80B, _arch(SMALL), _arch({**SMALL, "first_k_dense_replace": 1}),
                 _arch({**SMALL, "tie_word_embeddings": True})):
        assert sum(math.prod(s) for _, s in parameter_shapes(arch)) == count_params(arch, mtp_layers=0).total
    names = [n for n, _ in parameter_shapes(QWEN3_NEXT_80B)]
    assert len(names) == len(set(names)) == 759
    assert dict(parameter_shapes(QWEN3_NEXT_80B))["model.layers.0.mlp.experts.gate_up_proj"] == (512, 1024, 2048)


def test_shapes_match_the_installed_transformers():
    """The test extra's transformers (CI installs the newest): the same names and shapes, if its layout is 5.x's."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    if not hasattr(transformers, "Qwen3NextConfig"):
        pytest.skip("transformers without Qwen3-Next")
    with torch.device("meta"):
        model = transformers.Qwen3NextForCausalLM(transformers.Qwen3NextConfig(**SMALL))
    real = {n: tuple(p.shape) for n, p in model.named_parameters()}
    if "model.layers.0.mlp.experts.gate_up_proj" not in real:
        pytest.skip(f"transformers {transformers.__version__} keeps one module per expert (4.x layout)")
    assert dict(parameter_shapes(_arch(SMALL))) == real


_STACK_SHAPES = """
import json, sys, torch, transformers
from transformers import Qwen3NextConfig, Qwen3NextForCausalLM
with torch.device("meta"):
    model = Qwen3NextForCausalLM(Qwen3NextConfig(**json.loads(sys.argv[1])))
print(json.dumps({"version": transformers.__version__,
                  "shapes": {n: list(p.shape) for n, p in model.named_parameters()}}))
"""


def test_shapes_match_the_stack_transformers_on_the_80b_config():
    """transformers 5.0.0rc0, the pin slime's FSDP actor loads the model with, on the real config's values."""
    from tests.slime_parser import stack_python

    a = QWEN3_NEXT_80B
    cfg = {f: getattr(a, f) for f in a.__dataclass_fields__ if f not in ("full_attention_interval",
                                                                       "first_k_dense_replace")}
    cfg["layer_types"] = ["full_attention" if (i + 1) % a.full_attention_interval == 0 else "linear_attention"
                          for i in range(a.num_hidden_layers)]
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    r = subprocess.run([stack_python(), "-c", _STACK_SHAPES, json.dumps(cfg)], capture_output=True, text=True,
                       env=env, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["version"] == "5.0.0rc0"
    assert dict(parameter_shapes(a)) == {n: tuple(s) for n, s in out["shapes"].items()}


# ---------------------------------------------------------------- the measurement

def _offload_cost() -> dict:
    return offload_costs(compare_file(SMOKE_RUNS))[OFFLOAD_RUN]


def test_smoke_offload_host_memory_matches_state_plus_rounding():
    """1 x H200, smoke model (1.710B params): measured 29.05 GiB held by the offload, planned 29.22."""
    cost = _offload_cost()
    assert cost["end"] == pytest.approx(29.05, abs=0.01)  # the measurement, as docs/benchmarks.md states it
    assert cost["planned_end"] == pytest.approx(29.22, abs=0.01)
    assert abs(cost["planned_end"] / cost["end"] - 1) < 0.02
    # After sharding, before the first step, only the pinned params exist: 6.37 GiB of state + 1.87 rounding.
    assert cost["planned_after_build"] == pytest.approx(8.24, abs=0.01)
    assert abs(cost["planned_after_build"] / cost["after_build"] - 1) < 0.03
    assert "| 29.05 | 29.22 | 3.74 |" in render(compare_file(SMOKE_RUNS))


def test_16_bytes_per_param_alone_misses_the_measurement():
    """The old host term (state only) is off by more than 10%, over five times the new model's error."""
    runs = {r["label"]: r for r in compare_file(SMOKE_RUNS)}
    row = runs[OFFLOAD_RUN]
    run = next(r for r in json.loads(SMOKE_RUNS.read_text())["runs"] if r["label"] == OFFLOAD_RUN)
    params = count_params(_arch(run["model_config"]), 0).total
    assert row["host_state_gib"] == pytest.approx(16 * params / GIB) == pytest.approx(25.48, abs=0.01)
    cost = _offload_cost()
    old_error = abs(row["host_state_gib"] - cost["end"])
    new_error = abs(cost["planned_end"] - cost["end"])
    assert old_error / cost["end"] > 0.10
    assert old_error > 5 * new_error
    after_build_old = 4 * params / GIB  # pinned fp32 params without rounding
    assert abs(after_build_old - cost["after_build"]) > 5 * abs(cost["planned_after_build"] - cost["after_build"])


def test_pinned_allocator_count_is_the_planned_blocks():
    """1 x H200, second pair of runs: torch's own pinned-allocator count (host_memory_stats' allocated_bytes,
    whole power-of-two blocks) equals runner.planner.pinned's params after sharding, to the byte, and
    params + grads at the end within 0.1% (the rest is smoke's own small pinned copies: the plain run
    holds 22 MiB of them too)."""
    rows = {r["label"]: r for r in compare_file(SMOKE_RUNS)}
    row = rows[OFFLOAD_RUN_2]
    run = next(r for r in json.loads(SMOKE_RUNS.read_text())["runs"] if r["label"] == OFFLOAD_RUN_2)
    arch = _arch(run["model_config"])
    planned = offloaded_bytes([s for _, s in parameter_shapes(arch)], 1, [0])
    assert run["host_pinned_allocated_after_build_bytes"] == [planned.params] == [8_847_835_648]
    assert row["pinned_after_build_measured_gib"] == row["pinned_after_build_estimated_gib"]
    end = run["host_pinned_allocated_end_bytes"][0]
    assert 0 <= end - (planned.params + planned.grads) < 0.001 * end
    # Unrounded fp32 params alone would be 6.37 GiB: the allocator's count shows the rounding.
    assert planned.params - 4 * planned.elements > 1.8 * GIB
    assert "| 8.240 / 8.240 | 16.494 / 16.480 |" in render(compare_file(SMOKE_RUNS))
    # The pair's own offload cost, paired by label, not with the first run's plain twin.
    assert offload_costs(compare_file(SMOKE_RUNS))[OFFLOAD_RUN_2]["end"] == pytest.approx(28.75, abs=0.01)


# ---------------------------------------------------------------- the derived recipes

def _host_terms(name: str, gpu: str) -> dict[str, float]:
    recipe = RECIPES[name]
    rep = planner.plan_for(recipe, train_flags(recipe, "/root"), GPU_PRESETS_GIB[gpu])
    host = next(r for r in rep.roles if r.kind == "host")
    return {t.name: t.gib for t in host.terms} | {"total": host.total_gib}


def test_six_ranks_round_the_fused_experts_up_four_do_not():
    h200, gb80 = _host_terms("fsdp-h200", "h200"), _host_terms("fsdp-80gb", "h100")
    state = 16 * count_params(QWEN3_NEXT_80B, 0).total / GIB
    for terms in (h200, gb80):
        assert terms["CPU-offloaded params, grads, Adam"] == pytest.approx(state)
    rounding = "pinned blocks: padding + power-of-two rounding"
    # 6 ranks: each fused expert tensor's 86-row shard (688 / 344 MiB) takes a 1 GiB / 512 MiB block,
    # params and grads alike: 504 MiB x 2 x 48 layers x 6 ranks, plus the embedding, head and the rest.
    experts = 2 * 48 * 6 * (2**30 - 688 * 2**20 + 2**29 - 344 * 2**20) / GIB
    assert experts == pytest.approx(283.5)
    assert experts < h200[rounding] < experts + 10
    # 4 ranks (fsdp-80gb): 128-row shards are exactly 1 GiB and 512 MiB; what is left is the small tensors.
    assert gb80[rounding] < 6
    assert h200["total"] == pytest.approx(1551.7, abs=0.1) and gb80["total"] == pytest.approx(1256.9, abs=0.1)


def test_reference_model_is_pinned_and_rounded_too():
    """KL on: slime's ref model is always under CPUOffloadPolicy, its fp32 params pinned like the actor's."""
    recipe = RECIPES["fsdp-h200"]
    flags = train_flags(recipe, "/root")
    flags.set("kl-coef", "0.01")
    rep = planner.plan_for(recipe, flags, GPU_PRESETS_GIB["h200"])
    host = next(r for r in rep.roles if r.kind == "host")
    ref = next(t for t in host.terms if t.name.startswith("reference model"))
    shapes = [s for _, s in parameter_shapes(QWEN3_NEXT_80B)]
    assert ref.gib * GIB == pytest.approx(offloaded_bytes(shapes, 6, range(6), grads=False, moments=False).params)
    assert ref.gib > 4 * count_params(QWEN3_NEXT_80B, 0).total / GIB + 90  # 4 B/param + ~146 GiB of rounding
