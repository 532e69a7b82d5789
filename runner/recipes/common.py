"""Flag groups that slime's three Qwen3-Next scripts share verbatim."""

from __future__ import annotations

from runner.flags import Flag, flag

HF_CHECKPOINT = "${BASE_FOLDER}/Qwen3-Next-80B-A3B-Thinking"
TORCH_DIST_CHECKPOINT = "${BASE_FOLDER}/Qwen3-Next-80B-A3B-Thinking_torch_dist"
ACTOR_CHECKPOINT = "${BASE_FOLDER}/Qwen3-Next-80B-A3B-Thinking_slime/"
PROMPT_DATA = "${BASE_FOLDER}/dapo-math-17k/dapo-math-17k.jsonl"
EVAL_DATA = "${BASE_FOLDER}/aime-2024/aime-2024.jsonl"
INPUT_KEY = "prompt"
LABEL_KEY = "label"


def checkpoint_flags(with_ref_load: bool) -> tuple[Flag, ...]:
    """CKPT_ARGS; the FSDP script comments out --ref-load."""
    out = [flag("hf-checkpoint", HF_CHECKPOINT)]
    if with_ref_load:
        out.append(flag("ref-load", TORCH_DIST_CHECKPOINT))
    out += [flag("load", ACTOR_CHECKPOINT), flag("save", ACTOR_CHECKPOINT), flag("save-interval", 20)]
    return tuple(out)


def rollout_flags(*, num_rollout: int, rollout_batch_size: int, n_samples: int, global_batch_size: int,
                  balance_data: bool) -> tuple[Flag, ...]:
    out = [
        flag("prompt-data", PROMPT_DATA),
        flag("input-key", INPUT_KEY),
        flag("label-key", LABEL_KEY),
        flag("apply-chat-template"),
        flag("rollout-shuffle"),
        flag("rm-type", "deepscaler"),
        flag("num-rollout", num_rollout),
        flag("rollout-batch-size", rollout_batch_size),
        flag("n-samples-per-prompt", n_samples),
        flag("rollout-max-response-len", 8192),
        flag("rollout-temperature", "0.8"),
        flag("global-batch-size", global_batch_size),
    ]
    if balance_data:
        out.append(flag("balance-data"))
    return tuple(out)


def eval_flags(*, interval: int, n_samples: int) -> tuple[Flag, ...]:
    return (
        flag("eval-interval", interval),
        flag("eval-prompt-data", "aime", EVAL_DATA),
        flag("n-samples-per-eval-prompt", n_samples),
        flag("eval-max-response-len", 16384),
        flag("eval-top-p", "0.7"),
    )


# GRPO_ARGS: GSPO with KL and entropy terms off.
GRPO = (
    flag("advantage-estimator", "gspo"),
    flag("kl-loss-coef", "0.00"),
    flag("kl-loss-type", "low_var_kl"),
    flag("kl-coef", "0.00"),
    flag("entropy-coef", "0.00"),
    flag("eps-clip", "4e-4"),
)

ADAM = (
    flag("optimizer", "adam"),
    flag("lr", "1e-6"),
    flag("lr-decay-style", "constant"),
    flag("weight-decay", "0.1"),
    flag("adam-beta1", "0.9"),
    flag("adam-beta2", "0.98"),
)

# Megatron recipes keep optimizer states on the CPU.
CPU_OFFLOADED_OPTIMIZER = (
    flag("optimizer-cpu-offload"),
    flag("overlap-cpu-optimizer-d2h-h2d"),
    flag("use-precision-aware-optimizer"),
)

RECOMPUTE_FULL = (
    flag("recompute-granularity", "full"),
    flag("recompute-method", "uniform"),
    flag("recompute-num-layers", 1),
)

# `--sglang-cuda-graph-bs 1 2 4 8 $(seq 16 8 128)`
CUDA_GRAPH_BATCH_SIZES = flag("sglang-cuda-graph-bs", 1, 2, 4, 8, *range(16, 129, 8))

MEGATRON_MISC = (
    # Megatron's default dropout is 0.1.
    flag("attention-dropout", "0.0"),
    flag("hidden-dropout", "0.0"),
    flag("accumulate-allreduce-grads-in-fp32"),
    flag("attention-softmax-in-fp32"),
    flag("attention-backend", "flash"),
)
