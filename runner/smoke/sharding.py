"""FSDP2 the way slime 3d7599aa's FSDP backend applies it (slime/backends/fsdp_utils/actor.py).

`apply_fsdp2` there: `fully_shard` on every module whose class is in the
model's `_no_split_modules` (Qwen3NextDecoderLayer) and on the input
embedding when the embeddings are untied, then on the root;
MixedPrecisionPolicy(param_dtype=bf16, reduce_dtype=fp32); CPUOffloadPolicy()
with --fsdp-cpu-offload. With offload the sharded fp32 parameters (and their
gradients) stay in host memory, AdamW created on them steps on the CPU, and
the buffers are moved to the GPU (`_fsdp2_load_full_state_dict`). The
process group is then hybrid, `cpu:gloo,cuda:nccl` (slime's
TrainRayActor.init), so collectives on host tensors (the gradient norm) work.

Imports torch lazily: only the worker calls these.
"""

from __future__ import annotations

# slime's default --fsdp-cpu-backend with --fsdp-cpu-offload
OFFLOAD_BACKEND = "cpu:gloo,cuda:nccl"


def process_group_backend(device: str, cpu_offload: bool) -> str:
    if device == "cpu":
        return "gloo"
    return OFFLOAD_BACKEND if cpu_offload else "nccl"


def apply_fsdp2(model, *, cpu_offload: bool, pin_memory: bool):
    """Shard `model` in place as slime's apply_fsdp2 does; returns the wrapped modules' names."""
    import torch
    from torch.distributed.fsdp import CPUOffloadPolicy, MixedPrecisionPolicy, fully_shard

    # A list in transformers 5.0.0rc0 (slime indexes it), a set in later 5.x.
    layer_classes = [c for c in (model._no_split_modules or ()) if c is not None]
    assert layer_classes, "the model names no _no_split_modules to shard by"
    wrapped = [(name, m) for name, m in model.named_modules()
               if type(m).__name__ in layer_classes
               or (isinstance(m, torch.nn.Embedding) and not model.config.tie_word_embeddings)]
    kwargs = {"mp_policy": MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32),
              "offload_policy": CPUOffloadPolicy(pin_memory=pin_memory) if cpu_offload else None}
    kwargs = {k: v for k, v in kwargs.items() if v is not None}
    for _, module in wrapped:
        fully_shard(module, **kwargs)
    fully_shard(model, **kwargs)
    return [name for name, _ in wrapped]


def buffers_to(model, device) -> None:
    """slime, after loading with offload: parameters stay on the CPU, buffers go to the GPU."""
    for buf in model.buffers():
        buf.data = buf.data.to(device)
