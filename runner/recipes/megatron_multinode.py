"""Four nodes x 8 GPUs, training and rollout colocated on all 32 GPUs.

Reproduces scripts/run-qwen3-next-80B-A3B.sh at the pinned commit (minus its
invalid runtime-env JSON, which the runner builds with a serializer).
"""

from runner.flags import flag
from runner.recipes import common
from runner.recipes.base import FlagGroup, Layout, Parallelism, Recipe, ScriptSource

RECIPE = Recipe(
    name="megatron-multinode",
    summary="Megatron, 4 nodes x 8 GPUs colocated: TP2 PP4 CP2 EP8, rollout sglang TP8 EP8 with MTP",
    source=ScriptSource("scripts/run-qwen3-next-80B-A3B.sh"),
    backend="megatron",
    layout=Layout(nodes=4, gpus_per_node=8, actor_nodes=4, actor_gpus_per_node=8, rollout_gpus=0,
                  gpus_per_engine=8, colocate=True),
    parallel=Parallelism(tp=2, pp=4, cp=2, ep=8, etp=1, sequence_parallel=True),
    with_model_args=True,
    groups=(
        FlagGroup("CKPT_ARGS", common.checkpoint_flags(with_ref_load=True)),
        FlagGroup("ROLLOUT_ARGS", common.rollout_flags(
            num_rollout=3000, rollout_batch_size=32, n_samples=8, global_batch_size=256, balance_data=True)),
        FlagGroup("OPTIMIZER_ARGS", common.ADAM + common.CPU_OFFLOADED_OPTIMIZER),
        FlagGroup("GRPO_ARGS", common.GRPO),
        FlagGroup("PERF_ARGS", common.RECOMPUTE_FULL + (
            flag("use-dynamic-batch-size"),
            flag("max-tokens-per-gpu", 8192),
        )),
        FlagGroup("EVAL_ARGS", common.eval_flags(interval=20, n_samples=16)),
        FlagGroup("SGLANG_ARGS", (
            flag("sglang-mem-fraction-static", "0.8"),
            flag("sglang-ep-size", 8),
            common.CUDA_GRAPH_BATCH_SIZES,
            # Multi-token prediction (EAGLE) speculative decoding.
            flag("sglang-speculative-algorithm", "EAGLE"),
            flag("sglang-speculative-num-steps", 2),
            flag("sglang-speculative-eagle-topk", 1),
            flag("sglang-speculative-num-draft-tokens", 3),
            flag("sglang-enable-draft-weights-cpu-backup"),
            flag("sglang-max-running-requests", 512),
        )),
        FlagGroup("MISC_ARGS", common.MEGATRON_MISC + (
            flag("moe-token-dispatcher-type", "flex"),
            flag("moe-enable-deepep"),
        )),
    ),
    notes=(
        "TP2 x CP2 predates slime's fix for gradient norms inflated by TP x CP in "
        "linear-attention layers (slime PR 1748); grad-norm clipping may act too early.",
    ),
)
