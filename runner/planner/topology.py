"""Topology arithmetic: do the recipe's parallel sizes fit the model and the GPUs?

Pure: takes the rendered flags (so overrides are checked too), the model
architecture and the cluster shape; returns one-line problems.
"""

from __future__ import annotations

from runner.flags import FlagSet
from runner.recipes.base import Parallelism, TrainingShape
from runner.recipes.qwen3_next import Qwen3NextArchitecture


# Sizes the runner (and Megatron, sglang) divide by; each must be >= 1 when given.
SIZE_FLAGS = ("actor-num-nodes", "actor-num-gpus-per-node", "rollout-num-gpus-per-engine", "sglang-ep-size",
              "sglang-expert-parallel-size", "context-parallel-size")
MEGATRON_SIZE_FLAGS = ("tensor-model-parallel-size", "pipeline-model-parallel-size", "expert-model-parallel-size",
                       "expert-tensor-parallel-size")


def size_problems(flags: FlagSet, backend: str) -> list[str]:
    """A parallel size below 1 (the arithmetic below, and the planner's, divide by them)."""
    problems = []
    for name in SIZE_FLAGS + (MEGATRON_SIZE_FLAGS if backend == "megatron" else ()):
        if not flags.has(name):
            continue
        try:
            value = flags.int(name, 1)
        except ValueError as exc:
            problems.append(str(exc))
            continue
        if value < 1:
            problems.append(f"--{name} {value}: a parallel size must be >= 1 (e.g. --set {name}=1)")
    return problems


def topology_problems(flags: FlagSet, backend: str, arch: Qwen3NextArchitecture, *, nodes: int,
                      gpus_per_node: int, shape: TrainingShape | None = None) -> list[str]:
    """`shape`: the layout and parallelism already derived from `flags` (the planner passes its own)."""
    problems = size_problems(flags, backend)
    if problems:
        return problems
    if shape is None:
        try:
            shape = TrainingShape.from_flags(flags, backend=backend, nodes=nodes, gpus_per_node=gpus_per_node)
        except ValueError as exc:
            return [str(exc)]
    layout, par = shape.layout, shape.parallel

    if layout.actor_nodes > nodes:
        problems.append(f"--actor-num-nodes {layout.actor_nodes} exceeds the {nodes} node(s) available")
    if layout.actor_gpus_per_node > gpus_per_node:
        problems.append(f"--actor-num-gpus-per-node {layout.actor_gpus_per_node} exceeds the "
                        f"{gpus_per_node} GPUs per node")
    needed = layout.training_gpus + (0 if layout.colocate else layout.rollout_gpus)
    if needed > nodes * gpus_per_node:
        problems.append(f"the recipe needs {needed} GPUs ({layout.training_gpus} training + "
                        f"{0 if layout.colocate else layout.rollout_gpus} rollout) but {nodes} x {gpus_per_node} = "
                        f"{nodes * gpus_per_node} are available")
    if layout.gpus_per_engine < 1 or layout.rollout_gpu_count % layout.gpus_per_engine:
        problems.append(f"rollout GPUs ({layout.rollout_gpu_count}) are not divisible by "
                        f"--rollout-num-gpus-per-engine {layout.gpus_per_engine}")
    sglang_ep = flags.int("sglang-ep-size", 1)
    if sglang_ep > 1 and layout.gpus_per_engine % sglang_ep:
        problems.append(f"--rollout-num-gpus-per-engine {layout.gpus_per_engine} is not divisible by "
                        f"--sglang-ep-size {sglang_ep}")

    if backend == "fsdp" and flags.has("global-batch-size"):
        # FSDPTrainRayActor._packed_data asserts it, at the first training step.
        dp = layout.training_gpus // max(flags.int("context-parallel-size", 1), 1)
        gbs = flags.int("global-batch-size", 0)
        if dp > 0 and gbs % dp:
            problems.append(f"--global-batch-size {gbs} is not divisible by the {dp} FSDP data-parallel ranks "
                            f"(slime's FSDP actor asserts it); use a multiple of {dp}")
    if backend != "megatron":
        return problems
    layers = arch.num_hidden_layers
    if par.pp < 1 or layers % par.pp:
        problems.append(f"{layers} layers are not divisible by --pipeline-model-parallel-size {par.pp}")
    if par.ep < 1 or arch.num_experts % par.ep:
        problems.append(f"{arch.num_experts} experts are not divisible by --expert-model-parallel-size {par.ep}")
    if par.tp < 1 or arch.num_attention_heads % par.tp or arch.num_key_value_heads % par.tp:
        problems.append(f"--tensor-model-parallel-size {par.tp} does not divide the {arch.num_attention_heads} "
                        f"attention heads and {arch.num_key_value_heads} KV groups")
    model_parallel = par.tp * par.pp * par.cp
    if model_parallel < 1 or layout.training_gpus % model_parallel:
        problems.append(f"{layout.training_gpus} training GPUs are not divisible by TP x PP x CP = "
                        f"{par.tp} x {par.pp} x {par.cp} = {model_parallel}")
    else:
        # Megatron folds EP x ETP out of the same GPUs as TP x CP x DP.
        dp = layout.training_gpus // model_parallel
        expert_group = par.ep * par.etp
        if (par.tp * par.cp * dp) % expert_group:
            problems.append(f"EP x ETP = {par.ep} x {par.etp} does not divide TP x CP x DP = "
                            f"{par.tp} x {par.cp} x {dp} (training GPUs per pipeline stage)")
    return problems


def tp_cp_warning(flags: FlagSet, backend: str, parallel: Parallelism | None = None) -> str | None:
    """slime at the pinned commit inflates grad norms by TP x CP in linear-attention layers."""
    if backend != "megatron":
        return None
    par = parallel or Parallelism.from_flags(flags)
    if par.tp * par.cp > 1:
        return (f"TP x CP = {par.tp * par.cp} > 1: slime at this commit predates its fix for gradient norms "
                f"inflated by TP x CP in Gated DeltaNet layers (slime PR 1748); reported grad norms and "
                f"--clip-grad act on inflated values")
    return None
