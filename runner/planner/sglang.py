"""Per-GPU memory of an sglang rollout engine (0.5.6) serving Qwen3-Next. Pure.

sglang's static budget is --mem-fraction-static x total GPU memory: it loads
the weights, measures what is free, and gives the KV cache and the
linear-attention state pool `rest = free - total x (1 - mem_fraction_static)`
(ModelRunner.profile_max_num_token). When `rest` is not positive it refuses to
start. For hybrid Gated DeltaNet models the rest is split between the
Gated DeltaNet state pool and the full-attention KV cache in the ratio
--mamba-full-memory-ratio (0.9) unless the radix cache is disabled
(handle_max_mamba_cache). What is outside the static budget holds CUDA graphs
and activations.
"""

from __future__ import annotations

from runner.flags import FlagSet
from runner.planner.params import layer_params, mtp_params
from runner.planner.report import GIB, Term, gib
from runner.recipes.qwen3_next import Qwen3NextArchitecture

SGLANG_CONTEXT_GIB = 1.0  # CUDA context and NCCL of the sglang process, before weights load
RUNTIME_GIB = 3.0  # CUDA graphs (--cuda-graph-bs up to 128) and forward activations, outside the static budget
SPECULATIVE_RUNTIME_GIB = 1.0  # draft model's CUDA graphs
PAUSED_RESIDUE_GIB = 1.5  # a paused (offloaded) sglang process: context, NCCL, non-released buffers
MAMBA_FULL_MEMORY_RATIO = 0.9
PROMPT_ALLOWANCE = 2048


def weights_per_gpu(arch: Qwen3NextArchitecture, tp: int, mtp_layers: int, speculative: bool) -> float:
    """Parameters on one GPU of a TP-tp engine (EP partitions the same expert bytes)."""
    total = 0.0
    for i in range(arch.num_hidden_layers):
        lp = layer_params(arch, i)
        mixer = lp.mixer
        if lp.mixer_kind == "gated_attention" and tp > arch.num_key_value_heads:
            # KV heads are replicated once TP exceeds them: each rank keeps one KV head.
            kv = 2 * arch.hidden_size * arch.num_key_value_heads * arch.head_dim
            mixer = (mixer - kv) / tp + kv / arch.num_key_value_heads
        else:
            mixer = mixer / tp
        total += mixer + (lp.experts + lp.shared + lp.dense_mlp) / tp + lp.router + lp.norms
    total += arch.vocab_size * arch.hidden_size / tp * (1 if arch.tie_word_embeddings else 2)
    if speculative and mtp_layers > 0:
        total += mtp_params(arch, mtp_layers) / tp
    return total


def state_bytes_per_request(arch: Qwen3NextArchitecture, tp: int, ssm_bytes: int = 4) -> float:
    """Gated DeltaNet conv + recurrent state of one request (Mamba2StateShape for Qwen3-Next)."""
    key_dim = arch.linear_num_key_heads * arch.linear_key_head_dim
    value_dim = arch.linear_num_value_heads * arch.linear_value_head_dim
    conv = (value_dim + 2 * key_dim) / tp * (arch.linear_conv_kernel_dim - 1) * 2  # bf16
    ssm = arch.linear_num_value_heads / tp * arch.linear_value_head_dim * arch.linear_key_head_dim * ssm_bytes
    gdn_layers = arch.num_hidden_layers - arch.num_hidden_layers // arch.full_attention_interval
    return (conv + ssm) * gdn_layers


def kv_bytes_per_token(arch: Qwen3NextArchitecture, tp: int) -> float:
    kv_heads = max(arch.num_key_value_heads // tp, 1)
    attn_layers = arch.num_hidden_layers // arch.full_attention_interval
    return kv_heads * arch.head_dim * attn_layers * 2 * 2  # K and V, bf16


def rollout_gpu(flags: FlagSet, arch: Qwen3NextArchitecture, gpu_gib: float, *, mtp_layers: int,
                others_gib: float = 0.0, others_note: str = "") -> tuple[list[Term], list[str], dict]:
    """Terms, problems and capacity facts of one rollout GPU while it generates.

    others_gib: memory another process keeps on the GPU while sglang generates (a sleeping
    colocated trainer). slime starts the engines before the trainer, so sglang sizes its pool
    without it: the two only meet in the byte total, which must stay under the GPU's memory.
    """
    tp = flags.int("rollout-num-gpus-per-engine", 1)
    mfs = flags.float("sglang-mem-fraction-static", 0.9)
    spec = flags.value("sglang-speculative-algorithm") is not None
    draft = flags.int("sglang-speculative-num-draft-tokens", 0) if spec else 0
    w = 2 * weights_per_gpu(arch, tp, mtp_layers, spec)
    static = mfs * gpu_gib
    rest = gpu_gib - SGLANG_CONTEXT_GIB - gib(w) - gpu_gib * (1 - mfs)
    problems: list[str] = []
    if gib(w) + SGLANG_CONTEXT_GIB > gpu_gib:
        problems.append(f"rollout: the bf16 weights of one sglang TP{tp} shard ({gib(w):.1f} GiB) do not fit "
                        f"on a {gpu_gib:.1f} GiB GPU at all")
    if rest <= 0:
        problems.append(f"rollout: --sglang-mem-fraction-static {mfs:g} x {gpu_gib:.1f} GiB = {static:.1f} GiB "
                        f"< {gib(w):.1f} GiB weights (TP{tp} shard) + {SGLANG_CONTEXT_GIB:.1f} GiB context"
                        + f": short by {-rest:.1f} GiB, nothing left for KV/state cache (sglang refuses to start)")
    pool = max(rest, 0.0)
    if flags.has("sglang-disable-radix-cache"):
        slots = flags.int("sglang-max-running-requests", 512)
        state = slots * state_bytes_per_request(arch, tp) * (1 + draft) / GIB
        state = min(state, pool)
    else:
        ratio = flags.float("sglang-mamba-full-memory-ratio", MAMBA_FULL_MEMORY_RATIO)
        state = pool * ratio / (1 + ratio)
    kv = pool - state
    per_req = state_bytes_per_request(arch, tp) * (1 + draft)
    slots = int(state * GIB // per_req) if per_req else 0
    kv_tokens = int(kv * GIB // kv_bytes_per_token(arch, tp))
    runtime = RUNTIME_GIB + (SPECULATIVE_RUNTIME_GIB if spec else 0.0)
    terms = [
        Term("CUDA context (sglang)", SGLANG_CONTEXT_GIB, "before weights load"),
        Term("weights (bf16)", gib(w), f"TP{tp} shard (EP{flags.int('sglang-ep-size', 1)} partitions the same "
                                       f"expert bytes)" + (", incl. MTP draft layer" if spec and mtp_layers else "")),
        Term("KV cache (full attention)", kv, f"{kv_tokens:,} tokens at {kv_bytes_per_token(arch, tp):.0f} B/token"),
        Term("Gated DeltaNet state pool", state,
             f"{slots:,} request slots at {per_req / 2**20:.1f} MiB each"
             + (f" (x{1 + draft} for speculative drafts)" if draft else "")),
        Term("CUDA graphs, activations", runtime, "outside the static budget (allowance)"),
    ]
    if others_gib:
        terms.append(Term(others_note or "other process", others_gib, "kept on the GPU by the sleeping trainer"))
    max_len = PROMPT_ALLOWANCE + max(flags.int("rollout-max-response-len", 8192),
                                     flags.int("eval-max-response-len", 0))
    if not problems and kv_tokens < max_len:
        problems.append(f"rollout: KV cache holds {kv_tokens:,} tokens, less than one sequence of "
                        f"{max_len:,} (prompt allowance + max response length)")
    if not problems and slots < 1:
        problems.append("rollout: no room for a single request's Gated DeltaNet state")
    info = {"static budget": f"{mfs:g} x {gpu_gib:.1f} = {static:.1f} GiB",
            "KV + state pool": f"{pool:.1f} GiB",
            "full-length sequences in KV": f"{kv_tokens // max_len if max_len else 0} of {max_len:,} tokens",
            "concurrent requests (state slots)": slots}
    if rest <= 0:
        info["KV pool shortfall"] = f"{-rest:.1f} GiB"
    return terms, problems, info
