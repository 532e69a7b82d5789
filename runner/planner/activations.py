"""Activation memory per token of one Qwen3-Next decoder layer, and of the logits.

Bytes per token kept for backward by one layer (bf16 unless noted), for one
GPU holding 1/tp of the heads. These are estimates from the tensor shapes
of the Megatron/transformers implementations, not measurements; see
docs/planner.md for how they compare with the smoke runs.
"""

from __future__ import annotations

from runner.recipes.qwen3_next import Qwen3NextArchitecture

BF16, FP32 = 2, 4
# fla's chunked kernels keep one K x V state per 64-token chunk per value head.
FLA_CHUNK = 64
# Routed tokens are not spread evenly over experts / EP ranks; slime's recipes
# drop nothing (no capacity factor), so a rank may receive more than its share.
MOE_IMBALANCE = 1.5
# Logits: bf16 output, then fp32 cast, log-softmax and its gradient (3 fp32 copies).
LOGIT_BYTES = BF16 + 3 * FP32


def attention_bytes(a: Qwen3NextArchitecture, tp: int) -> float:
    q = a.num_attention_heads * a.head_dim / tp
    kv = max(a.num_key_value_heads / tp, 1) * a.head_dim
    # norm output (gathered), q, gate, k, v, core output, gated output
    return BF16 * (a.hidden_size + 4 * q + 2 * kv) + FP32 * a.num_attention_heads / tp  # + softmax lse


def deltanet_bytes(a: Qwen3NextArchitecture, tp: int) -> float:
    key_dim = a.linear_num_key_heads * a.linear_key_head_dim / tp
    value_dim = a.linear_num_value_heads * a.linear_value_head_dim / tp
    heads = a.linear_num_value_heads / tp
    proj = 2 * key_dim + 2 * value_dim + 2 * heads      # in_proj_qkvz + in_proj_ba outputs
    conv = 2 * key_dim + value_dim                       # conv1d output (q, k, v)
    core = 2 * value_dim                                 # core output, gated-norm output
    states = heads * a.linear_key_head_dim * a.linear_value_head_dim / FLA_CHUNK
    return BF16 * (a.hidden_size + proj + conv + core + states)


def moe_bytes(a: Qwen3NextArchitecture, tp: int, etp: int = 1) -> float:
    routed = a.num_experts_per_tok * MOE_IMBALANCE * BF16 * (
        2 * a.hidden_size + 3 * a.moe_intermediate_size / etp)  # permuted in, fc1 (gate+up), act, fc2 out
    router = 2 * FP32 * a.num_experts                             # fp32 logits and probabilities
    shared = BF16 * (a.hidden_size + 3 * a.shared_expert_intermediate_size / tp)
    return routed + router + shared + BF16 * a.hidden_size        # + norm output


def layer_bytes(a: Qwen3NextArchitecture, full_attention: bool, tp: int = 1, etp: int = 1) -> float:
    mixer = attention_bytes(a, tp) if full_attention else deltanet_bytes(a, tp)
    return mixer + moe_bytes(a, tp, etp)


def mean_layer_bytes(a: Qwen3NextArchitecture, tp: int = 1, etp: int = 1) -> float:
    n_attn = a.num_hidden_layers // a.full_attention_interval
    n_gdn = a.num_hidden_layers - n_attn
    return (n_attn * layer_bytes(a, True, tp, etp) + n_gdn * layer_bytes(a, False, tp, etp)) / a.num_hidden_layers


def max_layer_bytes(a: Qwen3NextArchitecture, tp: int = 1, etp: int = 1) -> float:
    return max(layer_bytes(a, True, tp, etp), layer_bytes(a, False, tp, etp))


def logits_bytes(a: Qwen3NextArchitecture, tokens: float, tp: int = 1) -> float:
    return tokens * a.vocab_size / tp * LOGIT_BYTES
