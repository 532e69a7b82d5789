"""One node, 8 x 80 GB: FSDP with CPU offload on 4 GPUs, sglang TP4 on the other 4 (our recipe).

Derived from scripts/run-qwen3-next-80B-A3B-fsdp.sh by the planner's
arithmetic (docs/planner.md, "FSDP layouts that fit"); not yet run at full
scale. What changes, and why:

- --fsdp-cpu-offload, as in fsdp-h200: the fp32 params, grads and AdamW
  moments (16 B/param) cannot stay on any number of 80 GB GPUs of one node.
  With it a training GPU holds the layers being computed, activations and
  the policy loss's logits: ~65 GiB planned, whatever the number of ranks.
- 4 training + 4 rollout GPUs (the script: 6 + 2): sglang needs at least
  TP4 to hold ~150 GiB of bf16 weights with room for KV (TP4: 37 GiB of
  weights per GPU); the script's TP2 engine needs 74 GiB per GPU.
- Not colocated: with --fsdp-cpu-offload slime's FSDP actor turns its own
  offload-train off (actor.py 74-75) while the driver still calls offload()
  instead of clear_memory() (train.py 47-56), so the trainer's CUDA cache,
  at its training peak, would stay beside sglang's weights during the weight
  sync: ~92 GiB planned on an 80 GB GPU (the planner's "weight sync" role).
Everything else (data, batch sizes: 4 prompts x 3 samples, global batch 12,
a multiple of 4 ranks; GSPO, AdamW, gradient checkpointing, eval, sglang
arguments) is the script's.
Host memory: ~1.23 TiB (1257 GiB) per node: 16 B/param of offloaded state
(1187 GiB), 6 GiB of pinned-allocator rounding (4 ranks shard the fused
expert tensors into exact powers of two) and processes.
"""

from dataclasses import replace

from runner.recipes.base import Layout
from runner.recipes.fsdp_h200 import RECIPE as FSDP_OFFLOAD

RECIPE = replace(
    FSDP_OFFLOAD,
    name="fsdp-80gb",
    summary="FSDP, 1 node x 8 x 80 GB: 4 training with CPU offload + 4 rollout (sglang TP4) (derived, not yet run "
            "at scale)",
    layout=Layout(nodes=1, gpus_per_node=8, actor_nodes=1, actor_gpus_per_node=4, rollout_gpus=4, gpus_per_engine=4),
    notes=(
        "Derived by `plan` for 8 x 80 GB GPUs; not yet run at full scale.",
        "Needs about 1.23 TiB (1257 GiB) of host memory: fp32 params, grads and AdamW moments of all "
        "79.7B parameters (16 B/param, 1187 GiB) live on the CPU, params and grads in pinned blocks that "
        "torch rounds up to a power of two per shard (+6 GiB with 4 ranks); `plan --host-memory GiB` checks it.",
    ),
)
