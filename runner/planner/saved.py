"""What a run writes to --save: one checkpoint's bytes, and how many checkpoints. Pure.

Megatron (slime 3d7599aa's Megatron backend, torch_dist at Megatron 3714d81d):
slime sets --use-distributed-optimizer and bf16 (unless --fp16) itself
(slime/backends/megatron_utils/arguments.py), and the distributed optimizer's
sharded state holds "param", "exp_avg" and "exp_avg_sq" for every parameter
(megatron/core/optimizer/distrib_optimizer.py). So a checkpoint is the 16-bit
weights (2 B) plus the fp32 main params and Adam moments (4 + 4 + 4 B; with
--use-precision-aware-optimizer, --main-params-dtype/--exp-avg-dtype/
--exp-avg-sq-dtype), of the model Megatron builds: without --mtp-num-layers the
MTP block is not in it. --no-save-optim saves the weights only.

FSDP (slime/backends/fsdp_utils/checkpoint.py, save()): model/ holds the
model's state dict as the actor holds it, fp32 (transformers 5.0.0rc0 loads
without a dtype: runner.planner.fsdp), optimizer/ torch's AdamW state (exp_avg
and exp_avg_sq, fp32), lr_scheduler/, rng.pt and meta.json (bytes). The HF
model has no MTP block.

The rollout manager's data state (rollout/global_dataset_state_dict_N.pt:
offsets and a metadata dict) is kilobytes: not counted.

How many: train.py saves after rollout r when should_run_periodic_action
(slime/utils/misc.py): (r + 1) % --save-interval == 0, the last rollout, and
each epoch's end (not counted here: it depends on the dataset's size).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from runner.flags import FlagSet
from runner.planner.params import ParamCounts

DTYPE_BYTES = {"fp32": 4, "fp16": 2, "bf16": 2, "fp8": 1}


@dataclass(frozen=True)
class CheckpointSize:
    total: int  # bytes
    terms: tuple[tuple[str, int], ...]  # (what, bytes)

    def describe(self) -> str:
        return f"{human_bytes(self.total)} (" + ", ".join(f"{what} {human_bytes(n)}" for what, n in self.terms) + ")"

    def to_json(self) -> dict:
        return {"bytes": self.total, "terms": {what: n for what, n in self.terms}}


def human_bytes(n: float) -> str:
    for unit, size in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6)):
        if abs(n) >= size:
            return f"{n / size:.2f} {unit}"
    return f"{n:.0f} B"


def checkpoint_size(backend: str, flags: FlagSet, counts: ParamCounts) -> CheckpointSize:
    """The bytes of one checkpoint slime saves with these flags."""
    if backend == "fsdp":
        params = counts.total
        return CheckpointSize(12 * params, (("model/ (fp32 weights)", 4 * params),
                                            ("optimizer/ (AdamW exp_avg + exp_avg_sq, fp32)", 8 * params)))
    params = counts.total + (counts.mtp if flags.int("mtp-num-layers", 0) > 0 else 0)
    terms = [(f"weights ({'fp16' if flags.has('fp16') else 'bf16'})", 2 * params)]
    if not flags.has("no-save-optim"):
        if flags.has("use-precision-aware-optimizer"):
            dtypes = [flags.value(f, "fp32") or "fp32" for f in ("main-params-dtype", "exp-avg-dtype",
                                                                 "exp-avg-sq-dtype")]
            per = sum(DTYPE_BYTES.get(d, 4) for d in dtypes)
            what = f"distributed optimizer (main params {dtypes[0]}, Adam m {dtypes[1]}, v {dtypes[2]})"
        else:
            per, what = 12, "distributed optimizer (fp32 main params + Adam m, v)"
        terms.append((what, per * params))
    return CheckpointSize(sum(n for _, n in terms), tuple(terms))


def saves_between(start: int, num_rollout: int, save_interval: int | None) -> int:
    """How many checkpoints train.py saves for rollouts start .. num_rollout - 1 (epoch ends aside)."""
    if not save_interval or save_interval <= 0 or num_rollout <= start:
        return 0
    periodic = sum(1 for r in range(start, num_rollout) if (r + 1) % save_interval == 0)
    last_extra = 0 if num_rollout % save_interval == 0 else 1
    return periodic + last_extra


@dataclass(frozen=True)
class SavePlan:
    """What --save will receive: `count` checkpoints of `each`, at most `kept` of them at once."""

    each: CheckpointSize
    count: int
    # New checkpoints on disk at the peak: all of them without --keep-checkpoints; with K, the K
    # newest complete ones plus the one being written, less those already in the folder (a resume).
    kept: int
    keep: int | None

    @property
    def peak_bytes(self) -> int:
        return self.kept * self.each.total

    def describe(self) -> str:
        if not self.count:
            return f"one checkpoint is {self.each.describe()}; this run saves none (no --save-interval)"
        held = (f"at most {self.kept} new on disk at once (--keep-checkpoints {self.keep}: the newest kept, plus "
                f"the one being written)" if self.keep is not None else "all kept (slime deletes none; "
                                                                        "--keep-checkpoints K keeps the K newest)")
        return (f"one checkpoint is {self.each.describe()}; this run saves {self.count}, {held}: up to "
                f"{human_bytes(self.peak_bytes)}")

    def to_json(self) -> dict:
        return {"checkpoint": self.each.to_json(), "saves": self.count, "kept": self.kept, "keep": self.keep,
                "peak_bytes": self.peak_bytes}


def scaled_to_index(counts: ParamCounts, index_total_size: int | None, bytes_per_param: int = 2) -> ParamCounts:
    """The counts scaled to the HF checkpoint's own size (model.safetensors.index.json's total_size,
    16-bit weights incl. MTP) when it has one: what is on disk beats the architecture's estimate
    (they agree within 0.1% for Qwen3-Next-80B-A3B: docs/planner.md)."""
    if not index_total_size or counts.checkpoint_total <= 0:
        return counts
    factor = index_total_size / bytes_per_param / counts.checkpoint_total
    return dataclasses.replace(counts, total=round(counts.total * factor), mtp=round(counts.mtp * factor))


def save_plan(backend: str, flags: FlagSet, counts: ParamCounts, *, start: int = 0,
              keep: int | None = None, existing: int = 0) -> SavePlan:
    """start: the first rollout this run trains (a resume's checkpoint + 1); existing: complete
    checkpoints already in the folder (they count towards --keep-checkpoints)."""
    each = checkpoint_size(backend, flags, counts)
    try:
        interval = int(flags.value("save-interval") or 0) or None
        num_rollout = int(flags.value("num-rollout") or 0)
    except ValueError:
        interval, num_rollout = None, 0
    count = saves_between(start, num_rollout, interval)
    kept = count if keep is None else min(count, max(1, keep + 1 - existing))
    return SavePlan(each, count, kept, keep)
