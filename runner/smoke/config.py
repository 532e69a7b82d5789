"""Smoke model shapes, knobs and FLOP accounting: pure Python, no torch.

The smoke model is transformers' Qwen3NextForCausalLM, randomly initialised,
shaped like Qwen3-Next-80B-A3B (config.json of Qwen/Qwen3-Next-80B-A3B-*) but
with fewer layers and experts so that it trains on one GPU:

| field                                   | 80B-A3B | smoke cuda | smoke cpu |
|-----------------------------------------|---------|------------|-----------|
| hidden_size                             | 2048    | 2048       | 64        |
| num_hidden_layers (3 GDN : 1 attention) | 48      | 8          | 4         |
| attention heads / kv heads / head_dim   | 16/2/256| 16/2/256   | 4/2/16    |
| GDN qk heads / v heads / head dims      | 16/32/128| 16/32/128 | 2/4/16    |
| conv kernel                             | 4       | 4          | 4         |
| experts / top-k / expert ffn / shared   | 512/10/512/512 | 32/10/512/512 | 4/2/32/32 |
| vocab                                   | 151936  | 151936     | 256       |

Everything here is plain data so that `build_plan`, dry runs and tests need
no torch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

# Qwen3-Next-80B-A3B's config.json (the values smoke keeps where memory allows).
QWEN3_NEXT_80B = {
    "hidden_size": 2048,
    "num_hidden_layers": 48,
    "num_attention_heads": 16,
    "num_key_value_heads": 2,
    "head_dim": 256,
    "linear_num_key_heads": 16,
    "linear_num_value_heads": 32,
    "linear_key_head_dim": 128,
    "linear_value_head_dim": 128,
    "linear_conv_kernel_dim": 4,
    "num_experts": 512,
    "num_experts_per_tok": 10,
    "moe_intermediate_size": 512,
    "shared_expert_intermediate_size": 512,
    "intermediate_size": 5120,
    "vocab_size": 151936,
    "full_attention_interval": 4,
    "partial_rotary_factor": 0.25,
    "rope_theta": 10000000,
    "rms_norm_eps": 1e-6,
    "hidden_act": "silu",
    "norm_topk_prob": True,
    "decoder_sparse_step": 1,
    "tie_word_embeddings": False,
}


@dataclass(frozen=True)
class Knob:
    """One size/training knob: a CLI flag of `smoke` and of its worker."""

    name: str  # flag name without dashes, underscores -> dashes on the CLI
    type: type
    cuda: object
    cpu: object
    help: str


KNOBS: tuple[Knob, ...] = (
    Knob("steps", int, 20, 8, "training steps"),
    Knob("warmup", int, 4, 1, "first steps left out of the timings (Triton compile/autotune, allocator warm-up)"),
    Knob("seq_len", int, 4096, 64, "tokens per sequence"),
    Knob("micro_batch", int, 2, 2, "sequences per GPU (per process) per step"),
    Knob("layers", int, 8, 4, "decoder layers; every 4th is full attention, the rest Gated DeltaNet"),
    Knob("hidden", int, 2048, 64, "hidden size"),
    Knob("heads", int, 16, 4, "full-attention query heads"),
    Knob("kv_heads", int, 2, 2, "full-attention key/value heads"),
    Knob("head_dim", int, 256, 16, "full-attention head dim"),
    Knob("linear_k_heads", int, 16, 2, "Gated DeltaNet query/key heads"),
    Knob("linear_v_heads", int, 32, 4, "Gated DeltaNet value heads"),
    Knob("linear_head_dim", int, 128, 16, "Gated DeltaNet key and value head dim"),
    Knob("experts", int, 32, 4, "routed experts per MoE layer"),
    Knob("top_k", int, 10, 2, "experts per token"),
    Knob("expert_ffn", int, 512, 32, "routed expert intermediate size"),
    Knob("shared_ffn", int, 512, 32, "shared expert intermediate size"),
    Knob("vocab", int, 151936, 256, "vocabulary size"),
    Knob("data_vocab", int, 1024, 256, "token ids the synthetic data uses (a random permutation chain over the "
         "first N ids): small enough that the loss visibly falls within a few steps"),
    Knob("data_noise", float, 0.25, 0.25, "probability that the next synthetic token is random instead of the "
         "permutation's: sets the loss floor the curve flattens towards"),
    Knob("lr", float, 3e-4, 1e-2, "peak AdamW learning rate (linear warm-up over the first tenth of the steps, "
         "then cosine decay to a tenth)"),
    Knob("seed", int, 0, 0, "random seed (model init and synthetic data)"),
    Knob("min_loss_drop", float, 0.05, 0.05, "required relative drop of the loss, first step vs final step"),
    # From the first H100 numbers (docs/benchmarks.md): 5.6-5.7% at these
    # defaults; the floor leaves room for run-to-run noise and other GPUs.
    Knob("min_mfu", float, 0.04, 0.0, "fail below this MFU on GPUs with a known bf16 peak (0 disables)"),
)

KNOB_NAMES = tuple(k.name for k in KNOBS)


def resolve(device: str, given: dict) -> dict:
    """Knob values for `device`, with the ones the user gave (not None) winning."""
    out = {}
    for k in KNOBS:
        v = given.get(k.name)
        out[k.name] = (k.cuda if device == "cuda" else k.cpu) if v is None else k.type(v)
    return out


def validate(knobs: dict) -> list[str]:
    """One-line errors for knob values that can't build or train the model."""
    errs = []
    for name in ("steps", "seq_len", "micro_batch", "layers", "hidden", "heads", "kv_heads", "head_dim",
                 "linear_k_heads", "linear_v_heads", "linear_head_dim", "experts", "top_k", "expert_ffn",
                 "shared_ffn", "vocab"):
        if knobs[name] < 1:
            errs.append(f"--{name.replace('_', '-')} must be >= 1, got {knobs[name]}")
    if errs:
        return errs
    if knobs["steps"] < knobs["warmup"] + 3:
        errs.append(f"--steps ({knobs['steps']}) must be at least --warmup + 3 ({knobs['warmup'] + 3}) "
                    "so that some steps are timed and the loss trend is visible")
    if knobs["warmup"] < 0:
        errs.append("--warmup must be >= 0")
    if knobs["heads"] % knobs["kv_heads"]:
        errs.append(f"--heads ({knobs['heads']}) must be a multiple of --kv-heads ({knobs['kv_heads']})")
    if knobs["linear_v_heads"] % knobs["linear_k_heads"]:
        errs.append(f"--linear-v-heads ({knobs['linear_v_heads']}) must be a multiple of "
                    f"--linear-k-heads ({knobs['linear_k_heads']})")
    if knobs["top_k"] > knobs["experts"]:
        errs.append(f"--top-k ({knobs['top_k']}) can't exceed --experts ({knobs['experts']})")
    if knobs["layers"] < 4:
        errs.append(f"--layers ({knobs['layers']}) must be >= 4 to have the 3 Gated DeltaNet : 1 attention pattern")
    if knobs["vocab"] < 2:
        errs.append("--vocab must be >= 2")
    if not 2 <= knobs["data_vocab"] <= knobs["vocab"]:
        errs.append(f"--data-vocab ({knobs['data_vocab']}) must be between 2 and --vocab ({knobs['vocab']})")
    if not 0 <= knobs["data_noise"] < 1:
        errs.append(f"--data-noise ({knobs['data_noise']}) must be in [0, 1)")
    if knobs["lr"] <= 0:
        errs.append(f"--lr ({knobs['lr']}) must be > 0")
    return errs


def loss_floor(knobs: dict) -> float:
    """The lowest mean loss a model can reach on the synthetic data: the next token's entropy given the current.

    With probability 1 - noise the next id is the permutation's, else uniform over
    the n data ids (which includes the permutation's with probability noise / n).
    """
    n, noise = knobs["data_vocab"], knobs["data_noise"]
    p_next = 1 - noise + noise / n
    p_other = noise / n
    return -(p_next * math.log(p_next)) - ((n - 1) * p_other * math.log(p_other) if p_other > 0 else 0.0)


def layer_types(layers: int, interval: int = 4) -> list[str]:
    """Qwen3-Next's pattern: layer i is full attention when (i + 1) % interval == 0."""
    return ["full_attention" if (i + 1) % interval == 0 else "linear_attention" for i in range(layers)]


def model_config(knobs: dict) -> dict:
    """The exact keyword arguments given to transformers' Qwen3NextConfig."""
    cfg = dict(QWEN3_NEXT_80B)
    cfg.update({
        "hidden_size": knobs["hidden"],
        "num_hidden_layers": knobs["layers"],
        "num_attention_heads": knobs["heads"],
        "num_key_value_heads": knobs["kv_heads"],
        "head_dim": knobs["head_dim"],
        "linear_num_key_heads": knobs["linear_k_heads"],
        "linear_num_value_heads": knobs["linear_v_heads"],
        "linear_key_head_dim": knobs["linear_head_dim"],
        "linear_value_head_dim": knobs["linear_head_dim"],
        "num_experts": knobs["experts"],
        "num_experts_per_tok": knobs["top_k"],
        "moe_intermediate_size": knobs["expert_ffn"],
        "shared_expert_intermediate_size": knobs["shared_ffn"],
        # Unused when every layer is MoE (decoder_sparse_step 1), kept proportional.
        "intermediate_size": knobs["shared_ffn"] * 10,
        "vocab_size": knobs["vocab"],
        "max_position_embeddings": max(4096, knobs["seq_len"]),
        "layer_types": layer_types(knobs["layers"]),
        "output_router_logits": False,
        "use_cache": False,
    })
    return cfg


# ---------------------------------------------------------------- FLOPs

def param_counts(cfg: dict) -> dict:
    """Parameter counts of Qwen3NextForCausalLM for `cfg` (total, and active per token).

    'matmul_active' is what a token multiplies by: every dense projection, the
    router, its top-k routed experts, the shared expert and its gate, the
    depthwise conv taps and the LM head. Embedding lookups and norms do no
    matmul work and are left out of it.
    """
    h, e = cfg["hidden_size"], cfg["num_experts"]
    hk, hv = cfg["linear_num_key_heads"], cfg["linear_num_value_heads"]
    dk, dv = cfg["linear_key_head_dim"], cfg["linear_value_head_dim"]
    key_dim, value_dim = hk * dk, hv * dv
    gdn = (h * (2 * key_dim + 2 * value_dim)  # in_proj_qkvz
           + h * 2 * hv                         # in_proj_ba
           + value_dim * h                      # out_proj
           + (2 * key_dim + value_dim) * cfg["linear_conv_kernel_dim"])  # depthwise conv
    gdn_other = 2 * hv + dv  # dt_bias, A_log, gated norm weight
    nq, nkv, d = cfg["num_attention_heads"], cfg["num_key_value_heads"], cfg["head_dim"]
    attn = h * nq * d * 2 + 2 * h * nkv * d + nq * d * h  # q (with gate), k, v, o
    attn_other = 2 * d  # q_norm, k_norm
    expert = 3 * h * cfg["moe_intermediate_size"]
    shared = 3 * h * cfg["shared_expert_intermediate_size"] + h  # + shared_expert_gate
    router = h * e
    moe_total = e * expert + shared + router
    moe_active = cfg["num_experts_per_tok"] * expert + shared + router
    types = cfg["layer_types"]
    n_gdn = sum(t == "linear_attention" for t in types)
    n_attn = len(types) - n_gdn
    embed = cfg["vocab_size"] * h
    head = embed
    norms = len(types) * 2 * h + h
    total = (n_gdn * (gdn + gdn_other) + n_attn * (attn + attn_other) + len(types) * moe_total
             + embed + head + norms)
    active = n_gdn * gdn + n_attn * attn + len(types) * moe_active + head
    return {"total": total, "matmul_active": active, "embedding": embed, "lm_head": head,
            "per_gdn_layer": gdn, "per_attention_layer": attn, "per_moe_layer_total": moe_total,
            "per_moe_layer_active": moe_active, "gdn_layers": n_gdn, "attention_layers": n_attn}


GDN_CHUNK = 64  # fla's chunk size for chunk_gated_delta_rule


def flops_per_token(cfg: dict, seq_len: int) -> dict:
    """Training FLOPs per token (forward + backward = 3x forward), no recomputation.

    - dense: 6 x matmul_active parameters (2 FLOPs per multiply-add, x3 for fwd+bwd).
    - attention (per full-attention layer): causal softmax attention does
      QK^T and AV over on average T/2 keys: forward 2 * 2 * heads * head_dim * T/2
      = 2 * heads * head_dim * T per token; training 3x that.
    - Gated DeltaNet (per linear-attention layer, chunked algorithm with chunk C):
      per value head and token the state work is about three K x V products
      (W S, K^T U into the state, q S out): 6 K V; the intra-chunk
      triangular products (QK^T, A V, the WY representation) about 2 C (K + V).
      Training 3x. This is an estimate of the useful work, not of fla's kernels.
    """
    p = param_counts(cfg)
    dense = 6 * p["matmul_active"]
    attn_layer = 3 * 2 * cfg["num_attention_heads"] * cfg["head_dim"] * seq_len
    k, v = cfg["linear_key_head_dim"], cfg["linear_value_head_dim"]
    gdn_layer = 3 * cfg["linear_num_value_heads"] * (6 * k * v + 2 * GDN_CHUNK * (k + v))
    attention = p["attention_layers"] * attn_layer
    gdn = p["gdn_layers"] * gdn_layer
    return {"dense": dense, "attention": attention, "gdn": gdn, "total": dense + attention + gdn}


# Dense bf16 tensor-core peaks from the vendors' datasheets (FLOP/s, no sparsity).
PEAK_BF16 = (
    ("H100 PCIe", 756e12),
    ("H100 NVL", 835e12),
    ("H100", 989.4e12),   # SXM5 / "H100 80GB HBM3"
    ("H200", 989.4e12),
    ("H800", 989.4e12),
    ("H20", 148e12),
    ("GH200", 989.4e12),
    ("B200", 2250e12),
    ("GB200", 2500e12),
    ("B300", 2250e12),
    ("A100", 312e12),
    ("A800", 312e12),
    ("L40S", 362e12),
)


def peak_bf16(gpu_name: str) -> float | None:
    """Datasheet dense bf16 peak for a GPU name as NVML/torch reports it, else None."""
    for key, peak in sorted(PEAK_BF16, key=lambda kv: -len(kv[0])):
        if key.lower() in gpu_name.lower():
            return peak
    return None
