"""The parameter tensors of transformers' Qwen3NextForCausalLM, derived from the config. Pure.

What slime's FSDP actor shards is the model that transformers builds, one
tensor at a time (FSDP2 makes each parameter its own shard, runner.planner.pinned),
so the host bytes of `--fsdp-cpu-offload` depend on these shapes, not only on
the parameter count. The layout is transformers 5.x's (5.0.0rc0, the stack's
pin, and the later 5.x releases): each MoE layer's routed experts are two
fused 3-D tensors, `experts.gate_up_proj` [E, 2 x moe_ffn, h] and
`experts.down_proj` [E, h, moe_ffn] (transformers 4.x kept one module per
expert instead). tests/test_pinned_host.py compares this list, names and
shapes, with the real model on the meta device.
"""

from __future__ import annotations

from runner.planner.params import is_full_attention
from runner.recipes.qwen3_next import Qwen3NextArchitecture

Shape = tuple[int, ...]


def _attention(a: Qwen3NextArchitecture, p: str) -> list[tuple[str, Shape]]:
    heads, kv, hd, h = a.num_attention_heads, a.num_key_value_heads, a.head_dim, a.hidden_size
    return [
        (f"{p}.self_attn.q_proj.weight", (2 * heads * hd, h)),  # queries and their output gate
        (f"{p}.self_attn.k_proj.weight", (kv * hd, h)),
        (f"{p}.self_attn.v_proj.weight", (kv * hd, h)),
        (f"{p}.self_attn.o_proj.weight", (h, heads * hd)),
        (f"{p}.self_attn.q_norm.weight", (hd,)),
        (f"{p}.self_attn.k_norm.weight", (hd,)),
    ]


def _gated_deltanet(a: Qwen3NextArchitecture, p: str) -> list[tuple[str, Shape]]:
    key_dim = a.linear_num_key_heads * a.linear_key_head_dim
    value_dim = a.linear_num_value_heads * a.linear_value_head_dim
    conv_dim = 2 * key_dim + value_dim
    h, nv = a.hidden_size, a.linear_num_value_heads
    return [
        (f"{p}.linear_attn.dt_bias", (nv,)),
        (f"{p}.linear_attn.A_log", (nv,)),
        (f"{p}.linear_attn.conv1d.weight", (conv_dim, 1, a.linear_conv_kernel_dim)),  # depthwise
        (f"{p}.linear_attn.in_proj_qkvz.weight", (2 * key_dim + 2 * value_dim, h)),
        (f"{p}.linear_attn.in_proj_ba.weight", (2 * nv, h)),
        (f"{p}.linear_attn.norm.weight", (a.linear_value_head_dim,)),
        (f"{p}.linear_attn.out_proj.weight", (h, value_dim)),
    ]


def _mlp(p: str, h: int, ffn: int) -> list[tuple[str, Shape]]:
    return [(f"{p}.gate_proj.weight", (ffn, h)), (f"{p}.up_proj.weight", (ffn, h)),
            (f"{p}.down_proj.weight", (h, ffn))]


def _sparse_moe(a: Qwen3NextArchitecture, p: str) -> list[tuple[str, Shape]]:
    e, h, ffn = a.num_experts, a.hidden_size, a.moe_intermediate_size
    return [
        (f"{p}.mlp.gate.weight", (e, h)),  # the router
        (f"{p}.mlp.experts.gate_up_proj", (e, 2 * ffn, h)),
        (f"{p}.mlp.experts.down_proj", (e, h, ffn)),
        *_mlp(f"{p}.mlp.shared_expert", h, a.shared_expert_intermediate_size),
        (f"{p}.mlp.shared_expert_gate.weight", (1, h)),
    ]


def parameter_shapes(a: Qwen3NextArchitecture) -> list[tuple[str, Shape]]:
    """(name, shape) of every parameter, in `named_parameters()` order; no MTP block (not in the model)."""
    h = a.hidden_size
    out: list[tuple[str, Shape]] = [("model.embed_tokens.weight", (a.vocab_size, h))]
    for i in range(a.num_hidden_layers):
        p = f"model.layers.{i}"
        out += _attention(a, p) if is_full_attention(a, i) else _gated_deltanet(a, p)
        # Layers before first_k_dense_replace are dense: transformers' mlp_only_layers.
        out += _sparse_moe(a, p) if i >= a.first_k_dense_replace else _mlp(f"{p}.mlp", h, a.intermediate_size)
        out += [(f"{p}.input_layernorm.weight", (h,)), (f"{p}.post_attention_layernorm.weight", (h,))]
    out.append(("model.norm.weight", (h,)))
    if not a.tie_word_embeddings:  # tied: lm_head is the embedding's tensor, listed once
        out.append(("lm_head.weight", (a.vocab_size, h)))
    return out
