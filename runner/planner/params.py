"""Parameter counts of a Qwen3-Next model, by component. Pure arithmetic.

Shapes follow the Hugging Face implementation (transformers' Qwen3NextForCausalLM)
and slime's Megatron spec for the same model: gated full attention (q_proj
emits queries and their output gate), Gated DeltaNet linear attention, and a
sparse MoE block with one shared expert and a sigmoid shared-expert gate in
every layer from `first_k_dense_replace` on. The multi-token-prediction (MTP)
block ships in the checkpoint but is not part of the trained model unless MTP
training is on; it is counted separately.
"""

from __future__ import annotations

from dataclasses import dataclass

from runner.recipes.qwen3_next import Qwen3NextArchitecture

COMPONENTS = ("embedding", "output_head", "gated_attention", "gated_deltanet", "routed_experts",
              "shared_experts", "router", "dense_mlp", "norms")


@dataclass(frozen=True)
class LayerParams:
    """One decoder layer, split the way the planner shards it."""

    mixer: int  # attention or Gated DeltaNet weights (TP-sharded)
    mixer_kind: str  # "gated_attention" or "gated_deltanet"
    experts: int  # routed experts (EP x ETP sharded)
    per_expert: int
    shared: int  # shared expert incl. its gate (TP-sharded)
    router: int  # replicated
    dense_mlp: int  # dense FFN of the first_k_dense_replace layers (TP-sharded)
    norms: int  # replicated

    @property
    def dense(self) -> int:
        """Everything but the routed experts."""
        return self.mixer + self.shared + self.router + self.dense_mlp + self.norms

    @property
    def total(self) -> int:
        return self.dense + self.experts


def is_full_attention(arch: Qwen3NextArchitecture, index: int) -> bool:
    return (index + 1) % arch.full_attention_interval == 0


def attention_params(a: Qwen3NextArchitecture) -> int:
    q_and_gate = a.hidden_size * a.num_attention_heads * a.head_dim * 2
    kv = 2 * a.hidden_size * a.num_key_value_heads * a.head_dim
    out = a.num_attention_heads * a.head_dim * a.hidden_size
    return q_and_gate + kv + out + 2 * a.head_dim  # q_norm, k_norm


def deltanet_params(a: Qwen3NextArchitecture) -> int:
    key_dim = a.linear_num_key_heads * a.linear_key_head_dim
    value_dim = a.linear_num_value_heads * a.linear_value_head_dim
    qkvz = a.hidden_size * (2 * key_dim + 2 * value_dim)
    ba = a.hidden_size * 2 * a.linear_num_value_heads
    conv = (2 * key_dim + value_dim) * a.linear_conv_kernel_dim
    per_head = 2 * a.linear_num_value_heads  # dt_bias, A_log
    norm = a.linear_value_head_dim
    out = value_dim * a.hidden_size
    return qkvz + ba + conv + per_head + norm + out


def layer_params(a: Qwen3NextArchitecture, index: int, *, force_attention: bool = False) -> LayerParams:
    full = force_attention or is_full_attention(a, index)
    mixer = attention_params(a) if full else deltanet_params(a)
    moe = index >= a.first_k_dense_replace
    per_expert = 3 * a.hidden_size * a.moe_intermediate_size
    return LayerParams(
        mixer=mixer,
        mixer_kind="gated_attention" if full else "gated_deltanet",
        experts=a.num_experts * per_expert if moe else 0,
        per_expert=per_expert if moe else 0,
        shared=(3 * a.hidden_size * a.shared_expert_intermediate_size + a.hidden_size) if moe else 0,
        router=a.hidden_size * a.num_experts if moe else 0,
        dense_mlp=0 if moe else 3 * a.hidden_size * a.intermediate_size,
        norms=2 * a.hidden_size,
    )


@dataclass(frozen=True)
class ParamCounts:
    by_component: dict[str, int]
    total: int
    # Per token: every non-expert weight plus top-k routed experts.
    active: int
    active_without_embeddings: int  # minus input embedding and output head
    mtp: int  # the checkpoint's MTP block (not in `total`)
    embedding_vocab: int

    @property
    def checkpoint_total(self) -> int:
        return self.total + self.mtp

    def to_json(self) -> dict:
        return {"by_component": dict(self.by_component), "total": self.total, "active": self.active,
                "active_without_embeddings": self.active_without_embeddings, "mtp": self.mtp,
                "checkpoint_total": self.checkpoint_total}


def mtp_params(a: Qwen3NextArchitecture, mtp_layers: int) -> int:
    if mtp_layers <= 0:
        return 0
    fc = 2 * a.hidden_size * a.hidden_size
    norms = 3 * a.hidden_size  # pre_fc_norm_hidden, pre_fc_norm_embedding, final norm
    layer = layer_params(a, a.num_hidden_layers, force_attention=True).total
    return fc + norms + mtp_layers * layer


def count_params(a: Qwen3NextArchitecture, mtp_layers: int = 1) -> ParamCounts:
    c = dict.fromkeys(COMPONENTS, 0)
    c["embedding"] = a.vocab_size * a.hidden_size
    c["output_head"] = 0 if a.tie_word_embeddings else a.vocab_size * a.hidden_size
    active_experts = 0
    for i in range(a.num_hidden_layers):
        lp = layer_params(a, i)
        c[lp.mixer_kind] += lp.mixer
        c["routed_experts"] += lp.experts
        c["shared_experts"] += lp.shared
        c["router"] += lp.router
        c["dense_mlp"] += lp.dense_mlp
        c["norms"] += lp.norms
        active_experts += a.num_experts_per_tok * lp.per_expert
    c["norms"] += a.hidden_size  # final norm
    total = sum(c.values())
    active = total - c["routed_experts"] + active_experts
    return ParamCounts(
        by_component=c, total=total, active=active,
        active_without_embeddings=active - c["embedding"] - c["output_head"],
        mtp=mtp_params(a, mtp_layers), embedding_vocab=a.vocab_size)
