"""Per-GPU memory of an FSDP2 training rank (slime's FSDP backend, or the smoke runs). Pure.

slime 3d7599aa's FSDP actor calls `from_pretrained` without a dtype, which in
transformers 4.57 and 5.0.0rc0 loads float32 weights; `fully_shard` then
shards those fp32 parameters over the data-parallel ranks with a bf16
MixedPrecisionPolicy (reduce in fp32), and torch.optim.AdamW keeps fp32
moments. Per rank: 4 (params) + 4 (grads) + 8 (Adam) bytes per parameter /
ranks, plus the unsharded bf16 copy of the layers being computed, plus
activations. With --fsdp-cpu-offload the sharded state lives on the CPU.
"""

from __future__ import annotations

from dataclasses import dataclass

from runner.planner import activations as act
from runner.planner.params import count_params, layer_params
from runner.planner.report import Term, gib
from runner.recipes.qwen3_next import Qwen3NextArchitecture

CUDA_CONTEXT_GIB = 3.0
FRAGMENTATION = 0.10


@dataclass(frozen=True)
class FsdpSetup:
    ranks: int
    tokens: int  # tokens per micro-batch per rank
    param_bytes: int = 4  # fp32 master weights (transformers' default dtype)
    gradient_checkpointing: bool = True
    cpu_offload: bool = False
    prefetch_layers: int = 2  # the layer being computed and the next one being all-gathered


def fsdp_tensor_terms(arch: Qwen3NextArchitecture, s: FsdpSetup) -> list[Term]:
    """Tensors PyTorch allocates (what torch.cuda.max_memory_allocated measures)."""
    p = count_params(arch, mtp_layers=0).total
    pb = s.param_bytes
    terms = []
    if s.cpu_offload:
        terms.append(Term("sharded params, grads, Adam", 0.0, "on CPU (--fsdp-cpu-offload)"))
    else:
        terms += [
            Term("sharded params", gib(pb * p / s.ranks), f"{pb} B/param / {s.ranks} ranks"),
            Term("sharded grads", gib(pb * p / s.ranks), "same dtype as the params"),
            Term("Adam moments", gib(2 * pb * p / s.ranks), "exp_avg + exp_avg_sq, param dtype"),
        ]
    biggest = max(layer_params(arch, i).total for i in range(arch.num_hidden_layers))
    vocab = arch.vocab_size * arch.hidden_size * (1 if arch.tie_word_embeddings else 2)
    terms.append(Term("unsharded bf16 layers", gib(2 * (s.prefetch_layers * biggest + vocab)),
                      f"{s.prefetch_layers} decoder layers all-gathered + embedding/head (root)"))
    terms.append(Term("unsharded grads (reduce)", gib(4 * biggest + 2 * vocab),
                      "one layer's fp32 gradients before reduce-scatter + bf16 head/embedding grads"))
    if s.gradient_checkpointing:
        ck = arch.num_hidden_layers * s.tokens * arch.hidden_size * act.BF16
        terms.append(Term("activations: checkpoints", gib(ck),
                          f"{arch.num_hidden_layers} layer inputs x {s.tokens} tokens x hidden, bf16"))
        terms.append(Term("activations: recomputed layer", gib(2 * s.tokens * act.max_layer_bytes(arch)),
                          "one layer re-run in backward: saved tensors + their gradients"))
    else:
        per = act.mean_layer_bytes(arch)
        terms.append(Term("activations: all layers", gib(arch.num_hidden_layers * s.tokens * per),
                          f"{arch.num_hidden_layers} layers x {s.tokens} tokens x {per / 1024:.1f} KiB/token"))
    terms.append(Term("logits", gib(act.logits_bytes(arch, s.tokens)),
                      f"{s.tokens} tokens x vocab x {act.LOGIT_BYTES} B"))
    return terms


def fsdp_gpu_terms(arch: Qwen3NextArchitecture, s: FsdpSetup) -> list[Term]:
    terms = fsdp_tensor_terms(arch, s)
    dyn = sum(t.gib for t in terms if t.name.startswith(("activations", "logits")))
    terms.append(Term("CUDA context, NCCL, workspaces", CUDA_CONTEXT_GIB, "fixed allowance"))
    terms.append(Term("fragmentation", FRAGMENTATION * dyn, f"{FRAGMENTATION:.0%} of activations"))
    return terms


def estimate_peak_allocated_bytes(arch: Qwen3NextArchitecture, s: FsdpSetup) -> float:
    """The planner's estimate of torch.cuda.max_memory_allocated for an FSDP2 run."""
    return sum(t.gib for t in fsdp_tensor_terms(arch, s)) * (1 << 30)
