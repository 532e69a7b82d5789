"""One node, 8 x 80 GB GPUs: training and rollout colocated on all 8 (our layout).

Derived from scripts/run-qwen3-next-80B-A3B-8gpus.sh by the planner's
arithmetic (docs/planner.md); not yet run at full scale. What changes:

- Colocated on all 8 GPUs (slime --colocate, which turns on offload-train and
  offload-rollout): on 80 GB GPUs no split of 8 works. sglang needs at least
  TP4 to hold ~150 GiB of bf16 weights with room for KV, and Megatron needs
  about 5-6 GPUs for weights + gradients (its optimizer is on the CPU):
  dedicated, that is 9-10 GPUs.
- Megatron TP1 PP4 EP2 (DP2) instead of PP6: 48 layers over 4 stages, experts
  split over 2 ranks, ~10.4B parameters per GPU. TP stays 1 and CP 1, so the
  TP x CP gradient-norm bug of this slime commit (slime PR 1748) does not apply.
- --grad-reduce-in-bf16 instead of fp32 gradient accumulation (the seed doc's
  own out-of-memory advice): fp32 gradients would fit the GPU (~68 GiB) but
  push host memory to ~1.84 TiB (vs ~1.72 with bf16), past a 2 TB node's usable RAM, because the
  paused trainer's gradient buffer is backed up to the host between phases.
- Rollout: one sglang engine over all 8 GPUs, TP8 EP8, mem-fraction-static 0.8
  (as slime's multi-node recipe): ~18.6 GiB of weights per GPU, ~44 GiB for KV
  and Gated DeltaNet states.
Everything else (data, GSPO, Adam with CPU offload, recompute, max tokens per
GPU, eval) is the 8-GPU script's.
"""

from dataclasses import replace

from runner.flags import flag
from runner.recipes import common
from runner.recipes.base import FlagGroup, Layout, Parallelism
from runner.recipes.megatron_8gpu import RECIPE as SEED_8GPU

# Only these groups change; the others are the 8-GPU script's, shared by reference.
_CHANGED = {
    "SGLANG_ARGS": (
        flag("sglang-mem-fraction-static", "0.8"),
        flag("sglang-ep-size", 8),
        common.CUDA_GRAPH_BATCH_SIZES,
    ),
    "MISC_ARGS": tuple(f for f in common.MEGATRON_MISC if f.name != "accumulate-allreduce-grads-in-fp32")
    + (flag("grad-reduce-in-bf16"), flag("moe-token-dispatcher-type", "alltoall")),
}

RECIPE = replace(
    SEED_8GPU,
    name="megatron-8gpu-80gb",
    summary="Megatron, 1 node x 8 x 80 GB colocated: TP1 PP4 EP2 + sglang TP8 EP8 (derived, not yet run at scale)",
    layout=Layout(nodes=1, gpus_per_node=8, actor_nodes=1, actor_gpus_per_node=8, rollout_gpus=0, gpus_per_engine=8,
                  colocate=True),
    parallel=Parallelism(tp=1, pp=4, cp=1, ep=2, etp=1, sequence_parallel=True),
    groups=tuple(FlagGroup(g.name, _CHANGED.get(g.name, g.flags)) for g in SEED_8GPU.groups),
    status="derived",
    derived_from=SEED_8GPU.name,
    notes=(
        "Derived by `plan` for 8 x 80 GB GPUs; not yet run at full scale.",
        "Needs about 1.72 TiB (1758 GiB) of host memory: CPU Adam states (16 B/param), slime's pinned weight copy and the "
        "paused trainer's GPU memory between phases; `plan --host-memory GiB` checks it.",
    ),
)
