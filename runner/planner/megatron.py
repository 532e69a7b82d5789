"""Per-GPU memory of a Megatron training rank under slime's flags. Pure.

What Megatron-LM (3714d81d) and slime (3d7599aa) keep on a training GPU:
- bf16 weights of the rank's pipeline stage, TP shard and EP shard;
- the gradient buffer: fp32 unless --grad-reduce-in-bf16 (Megatron's
  validate_args forces accumulate_allreduce_grads_in_fp32 on for bf16 unless
  that flag is given, so dropping --accumulate-allreduce-grads-in-fp32 alone
  changes nothing);
- the distributed optimizer (slime always turns it on): fp32 main params and
  Adam moments sharded over data parallel ranks. With --optimizer-cpu-offload
  they live on the CPU (HybridDeviceOptimizer), except that without
  --use-precision-aware-optimizer the distributed optimizer still creates its
  fp32 main-param shard on the GPU before the offload copies it;
- activations at --max-tokens-per-gpu under the recompute flags, with the
  1F1B schedule keeping up to PP micro-batches in flight on the first stage;
- the logits of the last stage, and a fixed allowance for CUDA context,
  NCCL communicators and workspaces plus a fragmentation share.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from runner.flags import FlagSet
from runner.planner import activations as act
from runner.planner.params import layer_params, mtp_params
from runner.planner.report import Term, gib
from runner.recipes.base import Layout, Parallelism, TrainingShape
from runner.recipes.qwen3_next import Qwen3NextArchitecture

CUDA_CONTEXT_GIB = 3.0  # context, NCCL communicators, cuBLAS/TE workspaces
DEEPEP_GIB = 2.0  # DeepEP NVLink/RDMA buffers (--moe-enable-deepep), allocated outside slime's offload region
FRAGMENTATION = 0.10  # of the activation terms: PyTorch caching-allocator slack
PROMPT_ALLOWANCE = 2048  # tokens of prompt assumed when a length must be derived from the response length
DTYPE_BYTES = {"fp32": 4, "float32": 4, "bf16": 2, "bfloat16": 2, "fp16": 2, "float16": 2, "fp8": 1}


@dataclass(frozen=True)
class StageParams:
    stage: int
    layers: int
    dense: float  # non-expert params on this GPU (TP-sharded where Megatron shards them)
    experts: float  # routed-expert params on this GPU
    has_embedding: bool
    has_head: bool

    @property
    def total(self) -> float:
        return self.dense + self.experts


def stage_params(flags: FlagSet, arch: Qwen3NextArchitecture, par: Parallelism, stage: int) -> StageParams:
    per_stage = arch.num_hidden_layers // max(par.pp, 1)
    first = stage * per_stage
    dense = experts = 0.0
    for i in range(first, first + per_stage):
        lp = layer_params(arch, i)
        dense += (lp.mixer + lp.shared + lp.dense_mlp) / par.tp + lp.router + lp.norms
        experts += lp.experts / (par.ep * par.etp)
    emb = stage == 0
    head = stage == par.pp - 1
    vocab_shard = arch.vocab_size * arch.hidden_size / par.tp
    if emb:
        dense += vocab_shard
    if head:
        if not arch.tie_word_embeddings or par.pp > 1:
            dense += vocab_shard
        dense += arch.hidden_size  # final norm
        if flags.has("enable-mtp-training"):
            n = flags.int("mtp-num-layers", 1)
            m = mtp_params(arch, n)
            mtp_experts = n * arch.num_experts * 3 * arch.hidden_size * arch.moe_intermediate_size
            dense += (m - mtp_experts) / par.tp
            experts += mtp_experts / (par.ep * par.etp)
    return StageParams(stage, per_stage, dense, experts, emb, head)


def micro_batch_tokens(flags: FlagSet) -> tuple[int, str]:
    if flags.has("use-dynamic-batch-size"):
        return flags.int("max-tokens-per-gpu", 0), "--max-tokens-per-gpu"
    mbs = flags.int("micro-batch-size", 1)
    resp = flags.int("rollout-max-response-len", 8192)
    return mbs * (resp + PROMPT_ALLOWANCE), (f"--micro-batch-size {mbs} x (--rollout-max-response-len {resp} "
                                             f"+ {PROMPT_ALLOWANCE} prompt tokens)")


def grad_bytes(flags: FlagSet) -> tuple[int, str]:
    if flags.has("grad-reduce-in-bf16"):
        return 2, "bf16 (--grad-reduce-in-bf16)"
    if flags.has("accumulate-allreduce-grads-in-fp32"):
        return 4, "fp32 (--accumulate-allreduce-grads-in-fp32)"
    return 4, "fp32 (Megatron forces fp32 accumulation for bf16 without --grad-reduce-in-bf16)"


def optimizer_gpu_bytes(flags: FlagSet) -> tuple[float, str]:
    """Bytes per parameter of this rank's DP shard that the optimizer keeps on the GPU."""
    main = DTYPE_BYTES.get(flags.value("main-params-dtype", "fp32") or "fp32", 4)
    m = DTYPE_BYTES.get(flags.value("exp-avg-dtype", "fp32") or "fp32", 4)
    v = DTYPE_BYTES.get(flags.value("exp-avg-sq-dtype", "fp32") or "fp32", 4)
    aware = flags.has("use-precision-aware-optimizer")
    full = (main + m + v) if aware else 12
    if not flags.has("optimizer-cpu-offload"):
        return full, f"fp32 main params + Adam moments, {full} B/param of the DP shard"
    frac = flags.float("optimizer-offload-fraction", 1.0)
    on_gpu = (1 - frac) * full
    if not aware:
        on_gpu += frac * 4
        return on_gpu, ("offloaded to CPU, but without --use-precision-aware-optimizer the distributed "
                        "optimizer's fp32 main-param shard stays on the GPU (4 B/param)")
    return on_gpu, f"on CPU (--optimizer-cpu-offload, fraction {frac:g}, precision-aware)"


def optimizer_cpu_bytes(flags: FlagSet) -> float:
    """Host bytes per parameter of the DP shard: fp32 master copy, fp32 grad copy, Adam m and v."""
    if not flags.has("optimizer-cpu-offload"):
        return 0.0
    return flags.float("optimizer-offload-fraction", 1.0) * 16


def dp_sizes(layout: Layout, par: Parallelism) -> tuple[int, int]:
    """(dense DP x CP shard count, expert DP shard count) of the distributed optimizer."""
    n = layout.training_gpus
    dense = max(n // max(par.tp * par.pp, 1), 1)  # DP x CP
    expert = max(n // max(par.pp * par.ep * par.etp, 1), 1)
    return dense, expert


def activation_terms(flags: FlagSet, arch: Qwen3NextArchitecture, par: Parallelism, sp: StageParams,
                     inflight: int) -> list[Term]:
    tokens, source = micro_batch_tokens(flags)
    sp_div = par.tp if par.sequence_parallel else 1
    h = arch.hidden_size
    terms = []
    gran = flags.value("recompute-granularity")
    if gran == "full":
        n = max(flags.int("recompute-num-layers", 1), 1)
        method = flags.value("recompute-method", "uniform")
        kept = math.ceil(sp.layers / n) if method == "uniform" else max(sp.layers - n, 0)
        ckpt = inflight * kept * tokens / sp_div * h * act.BF16
        terms.append(Term("activations: checkpoints", gib(ckpt),
                          f"{inflight} micro-batch(es) in flight x {kept} layer inputs x {tokens} tokens ({source})"
                          f"{' / TP (sequence parallel)' if sp_div > 1 else ''} x hidden, bf16"))
        work_layers = n if method == "uniform" else 1
        work = 2 * work_layers * tokens * act.max_layer_bytes(arch, par.tp, par.etp)
        if method == "block":
            work += inflight * n * tokens * act.max_layer_bytes(arch, par.tp, par.etp)
        terms.append(Term("activations: recomputed layer", gib(work),
                          f"{work_layers} layer(s) re-run in backward: saved tensors + their gradients"))
    else:
        per = act.mean_layer_bytes(arch, par.tp, par.etp)
        store = inflight * sp.layers * tokens * per
        what = "selective recompute counted as none" if gran == "selective" else "no recompute"
        terms.append(Term("activations: all layers", gib(store),
                          f"{what}: {inflight} micro-batch(es) x {sp.layers} layers x {tokens} tokens "
                          f"x {per / 1024:.0f} KiB/token"))
    if sp.has_head:
        terms.append(Term("logits", gib(act.logits_bytes(arch, tokens, par.tp)),
                          f"{tokens} tokens x vocab/TP x {act.LOGIT_BYTES} B (bf16 + 3 fp32 copies)"))
    return terms


def training_gpu_terms(flags: FlagSet, shape: TrainingShape, arch: Qwen3NextArchitecture) -> tuple[list[Term], dict]:
    """Terms of the most loaded training GPU, and facts about the layout."""
    layout, par = shape.layout, shape.parallel
    dense_dp, expert_dp = dp_sizes(layout, par)
    stages = training_params_per_gpu(flags, par, arch)
    gb, gnote = grad_bytes(flags)
    ob, onote = optimizer_gpu_bytes(flags)
    best: tuple[float, list[Term], StageParams] | None = None
    for sp in stages:
        inflight = max(par.pp - sp.stage, 1)
        terms = [
            Term("weights (bf16)", gib(2 * sp.total),
                 f"stage {sp.stage}: {sp.layers} layers, {sp.dense / 1e9:.2f}B dense/TP{par.tp} + "
                 f"{sp.experts / 1e9:.2f}B experts/EP{par.ep}"
                 + (" + embedding" if sp.has_embedding else "") + (" + output head" if sp.has_head else "")),
            Term("gradients", gib(gb * sp.total), gnote),
            Term("optimizer states", gib(ob * (sp.dense / dense_dp + sp.experts / expert_dp)),
                 f"{onote}; sharded over DPxCP {dense_dp} (dense), expert-DP {expert_dp}"),
        ]
        acts = activation_terms(flags, arch, par, sp, inflight)
        terms += acts
        dyn = sum(t.gib for t in acts)
        fixed = CUDA_CONTEXT_GIB + (DEEPEP_GIB if flags.has("moe-enable-deepep") else 0.0)
        terms.append(Term("CUDA context, NCCL, workspaces", fixed,
                          "fixed allowance" + (" incl. DeepEP buffers" if flags.has("moe-enable-deepep") else "")))
        terms.append(Term("fragmentation", FRAGMENTATION * dyn, f"{FRAGMENTATION:.0%} of activations"))
        total = sum(t.gib for t in terms)
        if best is None or total > best[0]:
            best = (total, terms, sp)
    assert best is not None
    _, terms, sp = best
    info = {"parallelism": f"TP{par.tp} PP{par.pp} CP{par.cp} EP{par.ep} ETP{par.etp} "
                           f"DP{layout.training_gpus // max(par.tp * par.pp * par.cp, 1)}",
            "worst stage": sp.stage,
            "params on this GPU": f"{sp.total / 1e9:.2f}B"}
    return terms, info


def training_params_per_gpu(flags: FlagSet, par: Parallelism, arch: Qwen3NextArchitecture) -> list[StageParams]:
    """The parameters one GPU of each pipeline stage holds."""
    return [stage_params(flags, arch, par, s) for s in range(max(par.pp, 1))]


def residue_when_asleep(flags: FlagSet) -> float:
    """GiB a sleeping training process keeps: context, plus DeepEP buffers (outside slime's offload region)."""
    return 1.5 + (DEEPEP_GIB if flags.has("moe-enable-deepep") else 0.0)
