"""Qwen3-Next-80B-A3B: architecture facts and its Megatron model flags.

The flags reproduce slime's scripts/models/qwen3-next-80B-A3B.sh (MODEL_ARGS)
at the pinned commit. The architecture numbers are the same facts, named as
in the Hugging Face config, for validation and memory planning.
"""

from __future__ import annotations

from dataclasses import dataclass

from runner.flags import Flag, flag
from runner.recipes.base import ScriptSource

MODEL_SCRIPT = ScriptSource("scripts/models/qwen3-next-80B-A3B.sh")
HF_MODEL_TYPE = "qwen3_next"
DEFAULT_HF_REPO = "Qwen/Qwen3-Next-80B-A3B-Thinking"
MODEL_DIR_NAME = "Qwen3-Next-80B-A3B-Thinking"


@dataclass(frozen=True)
class Qwen3NextArchitecture:
    """Qwen3-Next-80B-A3B as its Hugging Face config.json describes it."""

    num_hidden_layers: int = 48
    hidden_size: int = 2048
    intermediate_size: int = 5120
    num_attention_heads: int = 16
    num_key_value_heads: int = 2
    head_dim: int = 256
    vocab_size: int = 151936
    tie_word_embeddings: bool = False
    num_experts: int = 512
    num_experts_per_tok: int = 10
    moe_intermediate_size: int = 512
    shared_expert_intermediate_size: int = 512
    # Every 4th layer is gated full attention, the others Gated DeltaNet.
    full_attention_interval: int = 4
    linear_num_key_heads: int = 16
    linear_num_value_heads: int = 32
    linear_key_head_dim: int = 128
    linear_value_head_dim: int = 128
    linear_conv_kernel_dim: int = 4
    partial_rotary_factor: float = 0.25
    rope_theta: float = 10_000_000.0
    rms_norm_eps: float = 1e-6
    # Layers before this are dense (slime's FIRST_K_DENSE_REPLACE).
    first_k_dense_replace: int = 0

    @classmethod
    def from_hf_config(cls, config: dict) -> "Qwen3NextArchitecture":
        """Take the fields present in a config.json; the rest keep the 80B defaults."""
        known = {f for f in cls.__dataclass_fields__}  # noqa: C416
        values = {k: config[k] for k in known if k in config}
        return cls(**values)

    def moe_layer_freq(self) -> str:
        # The script builds "[1,1,...]" by joining with the first char of IFS=', '.
        pattern = ["0" if i < self.first_k_dense_replace else "1" for i in range(self.num_hidden_layers)]
        return "[" + ",".join(pattern) + "]"


QWEN3_NEXT_80B = Qwen3NextArchitecture()


def megatron_model_flags(arch: Qwen3NextArchitecture = QWEN3_NEXT_80B) -> list[Flag]:
    """MODEL_ARGS of scripts/models/qwen3-next-80B-A3B.sh, in its order."""
    return [
        flag("spec", "slime_plugins.models.qwen3_next", "get_qwen3_next_spec"),
        flag("disable-bias-linear"),
        flag("qk-layernorm"),
        flag("group-query-attention"),
        flag("num-attention-heads", arch.num_attention_heads),
        flag("num-query-groups", arch.num_key_value_heads),
        flag("kv-channels", arch.head_dim),
        flag("num-layers", arch.num_hidden_layers),
        flag("hidden-size", arch.hidden_size),
        flag("ffn-hidden-size", arch.intermediate_size),
        flag("use-gated-attention"),
        flag("normalization", "RMSNorm"),
        flag("apply-layernorm-1p"),
        flag("position-embedding-type", "rope"),
        flag("norm-epsilon", _compact(arch.rms_norm_eps)),
        flag("rotary-percent", _compact(arch.partial_rotary_factor)),
        flag("swiglu"),
        flag("untie-embeddings-and-output-weights"),
        flag("vocab-size", arch.vocab_size),
        flag("rotary-base", int(arch.rope_theta)),
        flag("moe-ffn-hidden-size", arch.moe_intermediate_size),
        flag("moe-shared-expert-intermediate-size", arch.shared_expert_intermediate_size),
        flag("moe-router-score-function", "softmax"),
        flag("moe-token-dispatcher-type", "alltoall"),
        flag("moe-router-topk", arch.num_experts_per_tok),
        # Passed as one argument: the script's unquoted $MOE_LAYER_FREQ is a
        # glob pattern that a file named "1" or "," in the cwd would expand.
        flag("moe-layer-freq", arch.moe_layer_freq()),
        flag("num-experts", arch.num_experts),
        flag("moe-grouped-gemm"),
        flag("moe-token-drop-policy", "probs"),
        flag("moe-router-dtype", "fp32"),
        flag("moe-permute-fusion"),
        flag("moe-aux-loss-coeff", 0),
        flag("attention-output-gate"),
        flag("moe-shared-expert-gate"),
    ]


def _compact(x: float) -> str:
    """1e-06 -> "1e-6", 0.25 -> "0.25": the spelling the script uses."""
    text = repr(x)
    if "e-0" in text:
        text = text.replace("e-0", "e-")
    return text
