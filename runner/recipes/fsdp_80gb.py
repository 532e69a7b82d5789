"""One node, 8 x 80 GB: FSDP with CPU offload, training and rollout colocated on all 8 (our recipe).

Derived from scripts/run-qwen3-next-80B-A3B-fsdp.sh by the planner's
arithmetic (docs/planner.md, "FSDP layouts that fit"); not yet run at full
scale. What changes, and why:

- --fsdp-cpu-offload, as in fsdp-h200: the fp32 params, grads and AdamW
  moments (16 B/param) cannot stay on any number of 80 GB GPUs of one node.
- Colocated on all 8 GPUs (slime --colocate): sglang needs at least TP4 to
  hold ~150 GiB of bf16 weights with room for KV, so no dedicated split of 8
  GPUs works: 4 training ranks would each hold a 74 GiB fp32 shard while the
  weights load (slime moves every shard to the GPU before it broadcasts the
  checkpoint, offload or not), and 2 rollout GPUs cannot hold the weights.
  With 8 ranks the load needs ~46 GiB per GPU. slime pauses the engines
  while the trainer loads and trains; --fsdp-cpu-offload turns slime's
  offload-train off, so during rollout the trainer keeps only its CUDA
  context (~3 GiB planned).
- Rollout: one sglang engine over the 8 GPUs, TP8 EP8, mem-fraction 0.8 (as
  slime's multi-node recipe for this model): ~18.7 GiB of weights and
  ~44 GiB of KV + Gated DeltaNet state per GPU.
- --rollout-batch-size 8 and --global-batch-size 24 (from 4 and 12): slime's
  FSDP actor asserts global_batch_size % data-parallel ranks == 0, and 12 is
  not a multiple of 8. 8 prompts x 3 samples keep the GRPO group size (3) and
  one optimizer step per rollout.
Everything else (data, GSPO, AdamW, gradient checkpointing, eval, sglang
CUDA graphs) is the script's.
Host memory: ~1.27 TiB (1305 GiB) per node: 16 B/param of offloaded state
(1187 GiB), 6 GiB of pinned-allocator rounding (8 ranks shard the fused
expert tensors into exact powers of two) and processes.
"""

from dataclasses import replace

from runner.flags import flag
from runner.recipes import common
from runner.recipes.base import FlagGroup, Layout
from runner.recipes.fsdp import RECIPE as FSDP
from runner.recipes.fsdp_h200 import CPU_OFFLOAD

# Only these groups change; the others are the FSDP script's, shared by reference.
_CHANGED = {
    "ROLLOUT_ARGS": common.rollout_flags(
        num_rollout=300, rollout_batch_size=8, n_samples=3, global_batch_size=24, balance_data=False),
    "SGLANG_ARGS": (
        flag("sglang-mem-fraction-static", "0.8"),
        flag("sglang-ep-size", 8),
        common.CUDA_GRAPH_BATCH_SIZES,
    ),
}

RECIPE = replace(
    FSDP,
    name="fsdp-80gb",
    summary="FSDP, 1 node x 8 x 80 GB colocated: CPU offload + sglang TP8 EP8 (derived, not yet run at scale)",
    layout=Layout(nodes=1, gpus_per_node=8, actor_nodes=1, actor_gpus_per_node=8, rollout_gpus=0, gpus_per_engine=8,
                  colocate=True),
    groups=tuple(
        FlagGroup(g.name, g.flags + (CPU_OFFLOAD,)) if g.name == "TRAIN_BACKEND_ARGS"
        else FlagGroup(g.name, _CHANGED.get(g.name, g.flags))
        for g in FSDP.groups),
    status="derived",
    derived_from=FSDP.name,
    notes=(
        "Derived by `plan` for 8 x 80 GB GPUs; not yet run at full scale.",
        "Needs about 1.27 TiB (1305 GiB) of host memory: fp32 params, grads and AdamW moments of all "
        "79.7B parameters (16 B/param, 1187 GiB) live on the CPU, params and grads in pinned blocks that "
        "torch rounds up to a power of two per shard (+6 GiB with 8 ranks); `plan --host-memory GiB` checks it.",
    ),
)
