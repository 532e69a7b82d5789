"""Host (CPU) memory per node: offloaded optimizer states and slime's CPU copies. Pure.

- Megatron --optimizer-cpu-offload (HybridDeviceOptimizer, offload fraction
  1): an fp32 master copy, an fp32 gradient copy and fp32 Adam moments,
  16 bytes per parameter, each parameter held once across the DP ranks.
- slime keeps a pinned bf16 copy of every training rank's weights
  (TensorBackuper, the source of weight updates to sglang): 2 bytes per
  parameter of each rank, DP replicas included.
- Colocated (offload_train): torch_memory_saver pauses the trainer with
  TMS_INIT_ENABLE_CPU_BACKUP=1, copying its GPU allocations (weights,
  gradient buffer, any GPU optimizer state) to host memory between phases.
- FSDP: rank 0 builds the whole model on the CPU in fp32 before sharding;
  --fsdp-cpu-offload keeps params, grads and AdamW moments there (16 B/param),
  params and grads in pinned blocks that torch rounds up to a power of two
  per tensor shard (runner.planner.pinned: counted from the model's shapes).
- A fixed allowance per process (Python, CUDA host buffers, Ray worker).
"""

from __future__ import annotations

from runner.flags import FlagSet
from runner.planner import megatron as mg
from runner.planner.pinned import offloaded_bytes
from runner.planner.report import Term, gib
from runner.planner.shapes import parameter_shapes
from runner.recipes.base import Layout, TrainingShape
from runner.recipes.qwen3_next import Qwen3NextArchitecture

PER_TRAIN_PROCESS_GIB = 8.0
PER_ROLLOUT_PROCESS_GIB = 4.0
RAY_BASE_GIB = 16.0


def _rollout_gpus_per_node(layout: Layout) -> int:
    """sglang runs one scheduler process per GPU."""
    if layout.colocate:
        return layout.actor_gpus_per_node
    return min(layout.rollout_gpus, layout.gpus_per_node)


def megatron_host_terms(flags: FlagSet, shape: TrainingShape, arch: Qwen3NextArchitecture,
                        total_params: float) -> list[Term]:
    layout, par = shape.layout, shape.parallel
    stages = mg.training_params_per_gpu(flags, par, arch)
    mean_rank = sum(s.total for s in stages) / len(stages)
    ranks = layout.actor_gpus_per_node
    nodes = max(layout.actor_nodes, 1)
    terms = []
    cpu = mg.optimizer_cpu_bytes(flags)
    if cpu:
        terms.append(Term("CPU optimizer (fp32 master, grads, Adam)", gib(cpu * total_params / nodes),
                          f"{cpu:g} B/param x {total_params / 1e9:.1f}B params / {nodes} node(s)"))
    terms.append(Term("slime weight backup (pinned bf16)", gib(2 * mean_rank * ranks),
                      f"{ranks} ranks x {mean_rank / 1e9:.2f}B params x 2 B"))
    if layout.colocate:
        gb, _ = mg.grad_bytes(flags)
        ob, _ = mg.optimizer_gpu_bytes(flags)
        dense_dp, expert_dp = mg.dp_sizes(layout, par)
        opt = sum(s.dense / dense_dp + s.experts / expert_dp for s in stages) / len(stages) * ob
        terms.append(Term("trainer paused to CPU (torch_memory_saver)",
                          gib(ranks * ((2 + gb) * mean_rank + opt)),
                          f"{ranks} ranks x (weights + {gb}-byte grads + GPU optimizer state)"))
    terms.append(_processes_term(layout))
    return terms


def _processes_term(layout: Layout) -> Term:
    """The processes' own memory on one node: trainers, sglang engines, Ray's daemons."""
    ranks = layout.actor_gpus_per_node
    rollout_procs = _rollout_gpus_per_node(layout)
    return Term("processes, Ray", ranks * PER_TRAIN_PROCESS_GIB + rollout_procs * PER_ROLLOUT_PROCESS_GIB
                + RAY_BASE_GIB, f"{ranks} x {PER_TRAIN_PROCESS_GIB:g} (trainers) + {rollout_procs} x "
                                f"{PER_ROLLOUT_PROCESS_GIB:g} (sglang) + {RAY_BASE_GIB:g} (Ray)")


def fsdp_uses_ref_model(flags: FlagSet) -> bool:
    """slime creates a reference model when a KL term is on (placement_group.create_training_models)."""
    return flags.has("use-kl-loss") or flags.float("kl-coef", 0.0) != 0


def fsdp_host_terms(flags: FlagSet, layout: Layout, arch: Qwen3NextArchitecture,
                    total_params: float) -> list[Term]:
    """Host memory of slime's FSDP actors on one node (single-node layouts: rank 0 is on it).

    The peak is the larger of two phases, not their sum: loading (rank 0's
    full fp32 model next to the shards) and training (whatever stays on the CPU).
    """
    ranks = layout.actor_gpus_per_node
    n = max(layout.training_gpus, 1)
    share = ranks / n  # this node's part of everything sharded over the ranks
    on_node = range(min(ranks, n))  # rank 0's node: the largest shards when the rows do not divide evenly
    offload = flags.has("fsdp-cpu-offload")
    ref = fsdp_uses_ref_model(flags)
    full = 4 * total_params
    shapes = [s for _, s in parameter_shapes(arch)] if offload or ref else []
    steady: list[Term] = []
    pinned_params = 0.0
    if offload:
        held = offloaded_bytes(shapes, n, on_node)
        pinned_params = held.params
        steady.append(Term("CPU-offloaded params, grads, Adam", gib(held.state),
                           "--fsdp-cpu-offload: fp32 params and grads (pinned), AdamW moments, 16 B/param"))
        steady.append(Term("pinned blocks: padding + power-of-two rounding", gib(held.rounding),
                           f"each rank's padded param shard and its grad shard, per tensor, rounded up to "
                           f"a power of two by torch's pinned allocator ({n} ranks)"))
    elif layout.colocate:
        steady.append(Term("trainer moved to CPU between phases", gib(16 * total_params * share),
                           "sleep(): model.cpu() + optimizer to CPU while sglang runs"))
    ref_pinned = 0.0
    if ref:
        ref_pinned = offloaded_bytes(shapes, n, on_node, grads=False, moments=False).total
        steady.append(Term("reference model (CPUOffloadPolicy)", gib(ref_pinned),
                           "KL on: slime always keeps the ref model's fp32 shards on the CPU, pinned, "
                           "rounded up to a power of two per shard"))
    # Loading: rank 0's full fp32 model (from_pretrained without dtype) and the
    # shards: all of them pinned on the CPU with offload, else only rank 0's before it
    # moves to the GPU. A ref model repeats this while the actor's copy is alive.
    shards = pinned_params if offload else full / n
    load = full + shards + (2 * full + ref_pinned if ref else 0.0)
    steady_bytes = sum(t.gib for t in steady) * (1 << 30)
    extra = max(load - steady_bytes, 0.0)
    terms = list(steady)
    terms.append(Term("model load at start", gib(extra),
                      f"transient: rank 0's full fp32 model + fp32 shards = {gib(load):.0f} GiB, "
                      f"counted beyond the training state only"))
    terms.append(_processes_term(layout))
    return terms
