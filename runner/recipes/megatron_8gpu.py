"""One node, 8 GPUs: 6 train with Megatron (PP6), 2 serve sglang rollout.

Reproduces scripts/run-qwen3-next-80B-A3B-8gpus.sh at the pinned commit.
"""

from runner.flags import flag
from runner.recipes import common
from runner.recipes.base import FlagGroup, Layout, Parallelism, Recipe, ScriptSource

RECIPE = Recipe(
    name="megatron-8gpu",
    summary="Megatron, 1 node x 8 GPUs: 6 training (PP6) + 2 rollout (sglang TP2)",
    source=ScriptSource("scripts/run-qwen3-next-80B-A3B-8gpus.sh"),
    backend="megatron",
    layout=Layout(nodes=1, gpus_per_node=8, actor_nodes=1, actor_gpus_per_node=6, rollout_gpus=2, gpus_per_engine=2),
    parallel=Parallelism(tp=1, pp=6, cp=1, ep=1, etp=1, sequence_parallel=True),
    with_model_args=True,
    groups=(
        FlagGroup("CKPT_ARGS", common.checkpoint_flags(with_ref_load=True)),
        FlagGroup("ROLLOUT_ARGS", common.rollout_flags(
            num_rollout=300, rollout_batch_size=16, n_samples=4, global_batch_size=64, balance_data=True)),
        FlagGroup("OPTIMIZER_ARGS", common.ADAM + common.CPU_OFFLOADED_OPTIMIZER),
        FlagGroup("GRPO_ARGS", common.GRPO),
        FlagGroup("PERF_ARGS", common.RECOMPUTE_FULL + (
            flag("use-dynamic-batch-size"),
            flag("max-tokens-per-gpu", 2048),
        )),
        FlagGroup("EVAL_ARGS", common.eval_flags(interval=20, n_samples=2)),
        FlagGroup("SGLANG_ARGS", (
            flag("sglang-mem-fraction-static", "0.8"),
            flag("sglang-ep-size", 1),
            common.CUDA_GRAPH_BATCH_SIZES,
        )),
        FlagGroup("MISC_ARGS", common.MEGATRON_MISC + (flag("moe-token-dispatcher-type", "alltoall"),)),
    ),
    notes=(
        "On 80 GB GPUs the 2 rollout GPUs cannot hold the ~160 GB of bf16 weights at "
        "--sglang-mem-fraction-static 0.8; run `plan` (it fits 141 GB H200s).",
    ),
)
