"""Per-GPU memory of an FSDP2 training rank (slime's FSDP backend, or the smoke runs). Pure.

What slime 3d7599aa's FSDP actor (slime/backends/fsdp_utils/actor.py) does,
and what it costs (docs/planner.md, "Where FSDP's bytes live"):

- `from_pretrained` without a dtype: transformers 5.0.0rc0 loads float32
  (`_get_dtype`: no dtype -> torch.get_default_dtype()). Rank 0 loads on the
  CPU, the other ranks on the meta device.
- `apply_fsdp2`: `fully_shard` on every `_no_split_modules` layer, on the
  embedding (untied) and on the root, MixedPrecisionPolicy(param_dtype=bf16,
  reduce_dtype=fp32), CPUOffloadPolicy() when --fsdp-cpu-offload.
- Loading: every rank moves its fp32 shard to the GPU (`model.to(cuda)` /
  `to_empty`), rank 0 broadcasts each full tensor (set_model_state_dict with
  broadcast_from_rank0), then with --fsdp-cpu-offload `model.to("cpu")`.
- torch.optim.AdamW on the (fp32) parameters: fp32 moments, created at the
  first step; on the CPU with --fsdp-cpu-offload (the step runs there).
- Training: 4 (params) + 4 (grads) + 8 (Adam) bytes per parameter / ranks,
  on the GPU or (offload) on the CPU; the unsharded bf16 copy of the layers
  being computed; activations; the logits path of the policy loss.
"""

from __future__ import annotations

from dataclasses import dataclass

from runner.planner import activations as act
from runner.planner.params import count_params, layer_params
from runner.planner.report import Term, gib
from runner.recipes.qwen3_next import Qwen3NextArchitecture

CUDA_CONTEXT_GIB = 3.0
FRAGMENTATION = 0.10
# Bytes per token x vocab that slime's FSDP train step keeps around the logits
# (_train_step -> get_logprob_and_entropy_with_cp): the fp32 copy of the
# logits, log_softmax for the gathered log-probs, log_softmax and softmax for
# the entropy (computed with grad even at --entropy-coef 0) and, in backward,
# their gradients. 24 is what tests/test_fsdp_memory.py measures on CPU (24.1) by
# tracking live tensor storage through slime's own functions; a transformers
# loss (the smoke runs) keeps act.LOGIT_BYTES = 14.
SLIME_LOGIT_BYTES = 24


@dataclass(frozen=True)
class FsdpSetup:
    ranks: int
    tokens: int  # tokens per micro-batch per rank
    param_bytes: int = 4  # fp32 master weights (transformers' default dtype)
    gradient_checkpointing: bool = True
    cpu_offload: bool = False
    prefetch_layers: int = 2  # the layer being computed and the next one being all-gathered
    logit_bytes: int = act.LOGIT_BYTES  # per token x vocab: SLIME_LOGIT_BYTES for slime's policy loss


def largest_tensor_params(arch: Qwen3NextArchitecture) -> int:
    """The biggest single parameter tensor: transformers 5.x keeps each layer's experts as one 3D tensor."""
    fused_gate_up = arch.num_experts * 2 * arch.moe_intermediate_size * arch.hidden_size
    return max(fused_gate_up, arch.vocab_size * arch.hidden_size)


def fsdp_tensor_terms(arch: Qwen3NextArchitecture, s: FsdpSetup) -> list[Term]:
    """Tensors PyTorch allocates while training (what torch.cuda.max_memory_allocated measures)."""
    p = count_params(arch, mtp_layers=0).total
    pb = s.param_bytes
    terms = []
    biggest = max(layer_params(arch, i).total for i in range(arch.num_hidden_layers))
    if s.cpu_offload:
        terms.append(Term("sharded params, grads, Adam", 0.0, "on CPU (--fsdp-cpu-offload)"))
        terms.append(Term("fp32 shard copied in for all-gather", gib(pb * biggest / s.ranks),
                          "CPUOffloadPolicy: one layer's shard goes to the GPU before the bf16 all-gather"))
    else:
        terms += [
            Term("sharded params", gib(pb * p / s.ranks), f"{pb} B/param / {s.ranks} ranks"),
            Term("sharded grads", gib(pb * p / s.ranks), "same dtype as the params"),
            Term("Adam moments", gib(2 * pb * p / s.ranks), "exp_avg + exp_avg_sq, param dtype"),
        ]
    vocab = arch.vocab_size * arch.hidden_size * (1 if arch.tie_word_embeddings else 2)
    terms.append(Term("unsharded bf16 layers", gib(2 * (s.prefetch_layers * biggest + vocab)),
                      f"{s.prefetch_layers} decoder layers all-gathered + embedding/head"))
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
    terms.append(Term("logits", gib(s.tokens * arch.vocab_size * s.logit_bytes),
                      f"{s.tokens} tokens x vocab x {s.logit_bytes} B"))
    return terms


def fsdp_gpu_terms(arch: Qwen3NextArchitecture, s: FsdpSetup) -> list[Term]:
    terms = fsdp_tensor_terms(arch, s)
    dyn = sum(t.gib for t in terms if t.name.startswith(("activations", "logits")))
    terms.append(Term("CUDA context, NCCL, workspaces", CUDA_CONTEXT_GIB, "fixed allowance"))
    terms.append(Term("fragmentation", FRAGMENTATION * dyn, f"{FRAGMENTATION:.0%} of activations"))
    return terms


def load_gpu_terms(arch: Qwen3NextArchitecture, s: FsdpSetup) -> list[Term]:
    """A training GPU while slime loads the weights (_fsdp2_load_full_state_dict), before any step.

    slime moves the sharded model to the GPU (`model.to(cuda)` on rank 0,
    `to_empty(cuda)` on the others), then broadcasts each full tensor from
    rank 0. Without offload every rank's fp32 shard sits there. With
    --fsdp-cpu-offload it does not: FSDPModule._apply re-checks each shard
    (reset_sharded_param) and moves it straight back to pinned host memory
    (`local_tensor.cpu().pin_memory()`, torch _fsdp_param.py), so the GPU
    holds one tensor's shard at a time (measured on 1 x H200, torch 2.11: a
    704 MiB model under CPUOffloadPolicy peaked at one 64 MiB tensor).
    """
    p = count_params(arch, mtp_layers=0).total
    big = largest_tensor_params(arch)
    if s.cpu_offload:
        shard = Term("fp32 shard in transit", gib(4 * big / s.ranks),
                     "--fsdp-cpu-offload: each shard returns to pinned host memory as it is moved; "
                     "one tensor's at a time")
    else:
        shard = Term("fp32 shard of the model", gib(4 * p / s.ranks),
                     f"4 B/param / {s.ranks} ranks: model.to(cuda) before set_model_state_dict")
    return [
        shard,
        Term("tensor being broadcast", gib(4 * big), "largest fp32 tensor, full size, from rank 0"),
        Term("CUDA context, NCCL, workspaces", CUDA_CONTEXT_GIB, "fixed allowance"),
    ]


def weight_sync_terms(arch: Qwen3NextArchitecture, flags, train_terms: list[Term],
                      rollout_terms: list[Term]) -> tuple[Term, ...]:
    """A colocated GPU while slime syncs weights after a step, with --fsdp-cpu-offload (slime 3d7599aa).

    The actor turns its own offload-train off under --fsdp-cpu-offload
    (actor.py 74-75), but the driver still calls offload(), not
    clear_memory() (train.py 47-56), and sleep() returns at once (actor.py
    304-307): nothing empties the trainer's CUDA cache before sglang reloads
    its weights (train.py onload_rollout) and update_weights gathers full
    tensors (update_weight_utils.py: param.cuda(), redistribute to
    Replicate); clear_memory() comes only after the update (actor.py 832).
    """
    trainer = sum(t.gib for t in train_terms)
    sglang = [t for t in rollout_terms if t.name in ("CUDA context (sglang)", "weights (bf16)")]
    buffer = flags.int("update-weight-buffer-size", 512 * 1024**2)
    return (
        Term("trainer's CUDA cache, still at its training peak", trainer,
             "offload() is a no-op under --fsdp-cpu-offload and nothing calls clear_memory() before the sync"),
        *sglang,
        Term("full tensors gathered for the update", gib(4 * largest_tensor_params(arch) + buffer),
             "the largest fp32 tensor gathered whole, plus --update-weight-buffer-size"),
    )


def estimate_peak_allocated_bytes(arch: Qwen3NextArchitecture, s: FsdpSetup) -> float:
    """The planner's estimate of torch.cuda.max_memory_allocated for an FSDP2 run."""
    return sum(t.gib for t in fsdp_tensor_terms(arch, s)) * (1 << 30)
