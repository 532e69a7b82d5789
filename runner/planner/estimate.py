"""Put the pieces together: a rendered recipe + hardware -> PlanReport. Pure."""

from __future__ import annotations

from runner.flags import FlagSet
from runner.planner import fsdp as fs
from runner.planner import host as hm
from runner.planner import megatron as mg
from runner.planner import sglang as sg
from runner.planner.params import count_params
from runner.planner.report import PlanReport, Role, Term
from runner.planner.saved import save_plan, scaled_to_index
from runner.planner.topology import CheckedShape, check_shape, tp_cp_warning
from runner.recipes.qwen3_next import Qwen3NextArchitecture

ASSUMPTIONS = (
    "GiB = 2^30 bytes; GPU capacity is the total NVML reports (H100 79.6, H200 140.4, B200 179.1 GiB).",
    "Megatron: slime always enables the distributed optimizer; weights bf16; gradient buffer fp32 unless "
    "--grad-reduce-in-bf16 (dropping --accumulate-allreduce-grads-in-fp32 alone keeps fp32).",
    "Megatron --optimizer-cpu-offload keeps fp32 master params, fp32 grads and Adam moments on the host "
    "(16 B/param, once across DP); without --use-precision-aware-optimizer the fp32 main-param shard also "
    "stays on the GPU.",
    f"Activations: 1F1B keeps PP micro-batches in flight on the first stage; full recompute keeps one bf16 "
    f"layer input per layer; the re-run layer's tensors are counted twice (values + gradients); routed "
    f"tokens get x1.5 for EP imbalance; logits cost {2 + 12} B per token x vocab/TP on the last stage.",
    f"Allowances: {mg.CUDA_CONTEXT_GIB:g} GiB per trainer for CUDA context/NCCL/workspaces "
    f"(+{mg.DEEPEP_GIB:g} with DeepEP), 10% of activations for fragmentation; sglang: "
    f"{sg.SGLANG_CONTEXT_GIB:g} GiB context, {sg.RUNTIME_GIB:g} GiB CUDA graphs/activations outside the "
    f"static budget (+{sg.SPECULATIVE_RUNTIME_GIB:g} with speculative decoding).",
    "sglang (0.5.6): KV + Gated DeltaNet state pool = mem-fraction-static x GPU - weights - context; the pool "
    "is split 0.9 : 1 between GDN states and KV cache (--sglang-mamba-full-memory-ratio) unless the radix cache is "
    "off; sglang refuses to start when it is not positive.",
    "Colocated (slime --colocate => offload-train and offload-rollout): sglang starts first and sizes its pool "
    "alone; in the training phase sglang is paused (weights, KV and CUDA graphs released, ~1.5 GiB left); in "
    "the rollout phase the trainer is paused by torch_memory_saver with CPU backup (~1.5 GiB left, plus DeepEP "
    "buffers, which slime allocates outside the offload region).",
    "Rollout sequence length for capacity checks: 2048 prompt tokens + max(rollout, eval) response length.",
    "FSDP (slime 3d7599aa): from_pretrained without dtype loads fp32; params, grads and AdamW moments are "
    "sharded fp32 (16 B/param / ranks; on the CPU with --fsdp-cpu-offload, where each tensor's padded param "
    "shard and its grad shard take a pinned block rounded up to a power of two); compute in bf16; at load each rank "
    "holds its fp32 shard on the GPU (with offload only one tensor's at a time); colocated with offload, the "
    "trainer's CUDA cache stays at its training peak through the weight sync (slime never empties it there); "
    f"the policy loss keeps {fs.SLIME_LOGIT_BYTES} B per token x vocab around the logits.",
    "The MTP block in the checkpoint is trained only with --enable-mtp-training and served only as the "
    "speculative draft.",
)


def plan(*, recipe_name: str, recipe_status: str, backend: str, flags: FlagSet, layout_nodes: int,
         gpus_per_node: int, arch: Qwen3NextArchitecture, mtp_layers: int, gpu_gib: float, gpu_label: str,
         host_gib: float | None = None, checkpoint: dict | None = None,
         checked: CheckedShape | None = None) -> PlanReport:
    """`checked`: the shape a checked request derived from these flags (runner.checks.request), taken as
    it is; without one, derived here."""
    counts = count_params(arch, mtp_layers)
    saving = save_plan(backend, flags, scaled_to_index(counts, (checkpoint or {}).get("index_total_size")))
    saves = {**saving.to_json(), "summary": saving.describe()}
    if checked is None:
        checked = check_shape(flags, backend, arch, nodes=layout_nodes, gpus_per_node=gpus_per_node)
    if checked.shape is None:  # every estimate below divides by the sizes: nothing to estimate
        return PlanReport(
            recipe=recipe_name, recipe_status=recipe_status, backend=backend, gpu=gpu_label, gpu_memory_gib=gpu_gib,
            host_memory_gib=host_gib, params=counts.to_json(), topology_problems=checked.problems, roles=(),
            assumptions=ASSUMPTIONS, checkpoint=checkpoint or {}, saves=saves)
    # Every estimate below gets this shape, read from the flags once.
    shape = checked.shape
    layout = shape.layout
    topo = checked.problems
    warnings = []
    if (w := tp_cp_warning(flags, backend, shape.parallel)):
        warnings.append(w)
    roles: list[Role] = []
    load_terms: list[Term] = []

    if backend == "megatron":
        train_terms, train_info = mg.training_gpu_terms(flags, shape, arch)
        host_terms = hm.megatron_host_terms(flags, shape, arch, counts.total)
        asleep = mg.residue_when_asleep(flags)
    else:
        tokens, _ = mg.micro_batch_tokens(flags)
        setup = fs.FsdpSetup(ranks=max(layout.training_gpus, 1), tokens=tokens,
                             gradient_checkpointing=flags.has("gradient-checkpointing"),
                             cpu_offload=flags.has("fsdp-cpu-offload"), logit_bytes=fs.SLIME_LOGIT_BYTES)
        train_terms = fs.fsdp_gpu_terms(arch, setup)
        train_info = {"sharding": f"FSDP2 over {setup.ranks} ranks"
                                  + (", params/grads/Adam on the CPU" if setup.cpu_offload else ""),
                      "tokens per micro-batch": tokens}
        host_terms = hm.fsdp_host_terms(flags, layout, arch, counts.total)
        load_terms = fs.load_gpu_terms(arch, setup)
        # slime's FSDP sleep() (or, with --fsdp-cpu-offload, nothing) only moves tensors: the
        # trainer's CUDA context and NCCL communicators stay on a colocated GPU.
        asleep = fs.CUDA_CONTEXT_GIB

    roll_terms, roll_problems, roll_info = sg.rollout_gpu(
        flags, arch, gpu_gib, mtp_layers=mtp_layers,
        others_gib=asleep if layout.colocate else 0.0,
        others_note="paused trainer" if layout.colocate else "")

    paused_sglang = (Term("paused sglang", sg.PAUSED_RESIDUE_GIB, "weights/KV/graphs released"),)
    if layout.colocate:
        roles.append(Role("colocated GPU, training phase", "gpu", layout.training_gpus,
                          tuple(train_terms) + paused_sglang, gpu_gib, info=train_info))
        roles.append(Role("colocated GPU, rollout phase", "gpu", layout.rollout_gpu_count, tuple(roll_terms),
                          gpu_gib, problems=tuple(roll_problems), info=roll_info))
        if load_terms:  # slime pauses the engines before the trainer loads
            roles.append(Role("colocated GPU, model load", "gpu", layout.training_gpus,
                              tuple(load_terms) + paused_sglang, gpu_gib))
        if backend == "fsdp" and setup.cpu_offload:
            roles.append(Role("colocated GPU, weight sync", "gpu", layout.training_gpus,
                              fs.weight_sync_terms(arch, flags, train_terms, roll_terms), gpu_gib))
    else:
        roles.append(Role(f"training GPU ({backend})", "gpu", layout.training_gpus, tuple(train_terms), gpu_gib,
                          info=train_info))
        if load_terms:
            roles.append(Role(f"training GPU ({backend}), model load", "gpu", layout.training_gpus,
                              tuple(load_terms), gpu_gib))
        roles.append(Role("rollout GPU (sglang)", "gpu", layout.rollout_gpu_count, tuple(roll_terms), gpu_gib,
                          problems=tuple(roll_problems), info=roll_info))
    roles.append(Role("host memory per node", "host", max(layout.actor_nodes, 1), tuple(host_terms), host_gib,
                      notes=() if host_gib else ("give --host-memory GiB to check it",)))
    return PlanReport(
        recipe=recipe_name, recipe_status=recipe_status, backend=backend, gpu=gpu_label, gpu_memory_gib=gpu_gib,
        host_memory_gib=host_gib, params=counts.to_json(), topology_problems=topo, roles=tuple(roles),
        assumptions=ASSUMPTIONS, checkpoint=checkpoint or {}, warnings=tuple(warnings), saves=saves)
