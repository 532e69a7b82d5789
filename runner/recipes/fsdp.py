"""One node, FSDP backend: 6 training GPUs + 2 rollout GPUs.

Reproduces scripts/run-qwen3-next-80B-A3B-fsdp.sh at the pinned commit. The
script never sources the model file, so no Megatron model flags are passed:
FSDP reads the architecture from the Hugging Face checkpoint.
"""

import json

from runner.flags import flag
from runner.recipes import common
from runner.recipes.base import FlagGroup, Layout, Recipe, ScriptSource

RECIPE = Recipe(
    name="fsdp",
    summary="FSDP, 1 node x 8 GPUs: 6 training + 2 rollout (sglang TP2)",
    source=ScriptSource("scripts/run-qwen3-next-80B-A3B-fsdp.sh"),
    backend="fsdp",
    layout=Layout(nodes=1, gpus_per_node=8, actor_nodes=1, actor_gpus_per_node=6, rollout_gpus=2, gpus_per_engine=2),
    parallel=None,
    with_model_args=False,
    groups=(
        FlagGroup("CKPT_ARGS", common.checkpoint_flags(with_ref_load=False)),
        FlagGroup("ROLLOUT_ARGS", common.rollout_flags(
            num_rollout=300, rollout_batch_size=4, n_samples=3, global_batch_size=12, balance_data=False)),
        FlagGroup("OPTIMIZER_ARGS", common.ADAM),
        FlagGroup("TRAIN_BACKEND_ARGS", (
            flag("train-backend", "fsdp"),
            flag("gradient-checkpointing"),
            flag("train-env-vars", json.dumps({"PYTORCH_CUDA_ALLOC_CONF": "expandable_segments:True"},
                                              separators=(",", ":"))),
        )),
        FlagGroup("GRPO_ARGS", common.GRPO),
        FlagGroup("PERF_ARGS", (flag("micro-batch-size", 1), flag("max-tokens-per-gpu", 1))),
        FlagGroup("EVAL_ARGS", common.eval_flags(interval=10, n_samples=1)),
        FlagGroup("SGLANG_ARGS", (
            flag("sglang-mem-fraction-static", "0.8"),
            flag("sglang-ep-size", 1),
            common.CUDA_GRAPH_BATCH_SIZES,
        )),
    ),
    pythonpath_in_slime=("scripts",),
)
