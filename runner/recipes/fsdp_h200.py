"""One node, 8 x H200: the FSDP script's layout with --fsdp-cpu-offload (our recipe).

Derived from scripts/run-qwen3-next-80B-A3B-fsdp.sh by the planner's
arithmetic (docs/planner.md, "FSDP layouts that fit"); not yet run at full
scale. One flag changes: --fsdp-cpu-offload.

Why: slime's FSDP actor loads the model in fp32 (from_pretrained without a
dtype under transformers 5.0.0rc0) and shards fp32 params, grads and AdamW
moments over the 6 training GPUs: 198 GiB each before activations, more than
any GPU. With slime's --fsdp-cpu-offload (FSDP2 CPUOffloadPolicy: params and
grads on the CPU, the AdamW step runs there) a training GPU keeps only the
layers being computed, activations and the policy loss's logits: ~64 GiB
planned. Rollout is unchanged: sglang TP2 on 2 GPUs holds 74 GiB of weights
per GPU, which fits 141 GB but not 80 GB (see fsdp-80gb).
Host memory: ~1.52 TiB (1552 GiB) per node: 16 B/param of offloaded state
(1187 GiB), 292 GiB of pinned-allocator rounding and processes. The rounding
is this layout's: 512 experts over 6 ranks give 86-row shards of each fused
expert tensor (688 and 344 MiB in fp32), which torch's pinned allocator
rounds up to 1 GiB and 512 MiB, for params and grads alike (docs/planner.md,
"Pinned host memory"). With 4 or 8 training ranks the shards are exact
powers of two and the rounding is ~6 GiB.
"""

from dataclasses import replace

from runner.flags import flag
from runner.recipes.base import FlagGroup
from runner.recipes.fsdp import RECIPE as FSDP

CPU_OFFLOAD = flag("fsdp-cpu-offload")

RECIPE = replace(
    FSDP,
    name="fsdp-h200",
    summary="FSDP, 1 node x 8 x H200: 6 training with CPU offload + 2 rollout (derived, not yet run at scale)",
    groups=tuple(FlagGroup(g.name, g.flags + (CPU_OFFLOAD,)) if g.name == "TRAIN_BACKEND_ARGS" else g
                 for g in FSDP.groups),
    status="derived",
    derived_from=FSDP.name,
    notes=(
        "Derived by `plan` for 8 x 141 GB GPUs; not yet run at full scale.",
        "Needs about 1.52 TiB (1552 GiB) of host memory: fp32 params, grads and AdamW moments of all "
        "79.7B parameters (16 B/param, 1187 GiB) live on the CPU, params and grads in pinned blocks that "
        "torch rounds up to a power of two per shard (+292 GiB with 6 ranks); `plan --host-memory GiB` checks it.",
    ),
)
