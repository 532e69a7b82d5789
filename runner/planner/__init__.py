"""`runner plan`: topology and memory planner for slime's Qwen3-Next recipes.

Pure estimation lives in the submodules (params, activations, megatron, fsdp,
sglang, host, estimate); this module is what the commands call: `run_plan`
(`runner plan --recipe`, for the `Hardware` asked about), `plan_summary` for
every recipe on several GPU sizes at once, and the verdicts on the GPUs at
hand that doctor and train ask for (`fits`, `memory_fit`,
`fitting_derived_recipe`). Method and assumptions: docs/planner.md.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from runner.flags import FlagSet
from runner.gpus import GpuFacts
from runner.planner.checkpoint import (CheckpointError, compare_with_index, index_total_size,
                                       load_architecture)
from runner.planner.estimate import plan
from runner.planner.hardware import GPU_PRESETS_GIB, host_memory_gib
from runner.planner.params import count_params
from runner.planner.report import PlanReport, render
from runner.planner.topology import CheckedShape
from runner.recipes.base import Recipe
from runner.recipes.qwen3_next import Qwen3NextArchitecture

__all__ = ["Hardware", "run_plan", "topology_arch", "fits", "memory_fit", "fitting_derived_recipe", "plan_for",
           "plan_summary", "CheckpointError", "GPU_PRESETS_GIB", "load_architecture"]

# Planned for when neither --gpu/--gpu-memory nor a local GPU says otherwise: the seed's headline GPU.
DEFAULT_GPU = "h100"


@dataclass(frozen=True)
class Hardware:
    """What to plan for (None: not given): a GPU preset or a memory size, the host's memory per node, and
    the checkpoint whose config.json to read (else the recipe's --hf-checkpoint when it exists)."""

    gpu: str | None = None  # a key of GPU_PRESETS_GIB
    gpu_memory: float | None = None  # GiB; wins over gpu
    host_memory: float | None = None  # GiB
    hf_checkpoint: str | None = None


def _checkpoint_dir(hf_checkpoint: str | None, flags: FlagSet) -> str | None:
    if hf_checkpoint:
        return hf_checkpoint
    rendered = flags.value("hf-checkpoint")
    if rendered and os.path.isfile(os.path.join(rendered, "config.json")):
        return rendered
    return None


def _gpu_choice(hw: Hardware, detected: float | None) -> tuple[float, str]:
    if hw.gpu_memory:
        return float(hw.gpu_memory), f"{hw.gpu_memory:g} GiB GPUs (--gpu-memory)"
    if hw.gpu:
        mem = GPU_PRESETS_GIB[hw.gpu]
        return mem, f"{hw.gpu.upper()} ({mem:.1f} GiB)"
    if detected:
        return float(detected), f"local GPUs ({detected:.1f} GiB)"
    mem = GPU_PRESETS_GIB[DEFAULT_GPU]
    return mem, f"{DEFAULT_GPU.upper()} ({mem:.1f} GiB, default: no local GPU)"


def plan_for(recipe, flags: FlagSet, gpu_memory_gib: float, *, gpu_label: str | None = None,
             host_memory_gib: float | None = None, checkpoint_dir: str | None = None,
             checked: CheckedShape | None = None) -> PlanReport:
    """The report for one recipe (rendered flags) on GPUs of `gpu_memory_gib`; `checked`: the shape a
    checked request already derived from the flags (runner.checks.request)."""
    arch, mtp_layers, facts = load_architecture(checkpoint_dir)
    counts = count_params(arch, mtp_layers)
    ck = compare_with_index(counts, index_total_size(checkpoint_dir))
    ck["config"] = facts
    return plan(recipe_name=recipe.name, recipe_status=recipe.status, backend=recipe.backend, flags=flags,
                layout_nodes=recipe.layout.nodes, gpus_per_node=recipe.layout.gpus_per_node, arch=arch,
                mtp_layers=mtp_layers, gpu_gib=gpu_memory_gib,
                gpu_label=gpu_label or f"{gpu_memory_gib:.1f} GiB GPUs", host_gib=host_memory_gib, checkpoint=ck,
                checked=checked)


def fits(recipe, flags: FlagSet, gpu_memory_gb: float, host_memory_gb: float | None = None,
         checked: CheckedShape | None = None) -> tuple[bool, list[str]]:
    """What doctor and train ask before starting: (fits, one-line reasons when it does not)."""
    report = plan_for(recipe, flags, gpu_memory_gb, host_memory_gib=host_memory_gb, checked=checked)
    return report.fits, report.reasons()


# The verdicts on the GPUs at hand (doctor, train).

def memory_fit(recipe: Recipe, flags: FlagSet, facts: GpuFacts,
               checked: CheckedShape | None = None) -> tuple[bool, list[str], float] | None:
    """The memory planner's verdict on this node's smallest GPU: (fits, reasons, GiB); None without GPUs.
    `checked`: the shape the checked request derived (runner.checks.request)."""
    if not facts.gpus:
        return None
    gib = min(g.memory_gib for g in facts.gpus)
    ok, reasons = fits(recipe, flags, gib, checked=checked)
    return ok, reasons, gib


def fitting_derived_recipe(recipe: Recipe, facts: GpuFacts, base_folder: str) -> str | None:
    """When `recipe` does not fit these GPUs: a one-line pointer to a derived recipe that does, if any."""
    from runner.recipes import RECIPES
    from runner.slime_args.render import train_flags

    if not facts.gpus:
        return None
    gib = min(g.memory_gib for g in facts.gpus)
    origin = recipe.derived_from or recipe.name
    for other in RECIPES.values():
        if other.derived_from != origin or other.name == recipe.name:
            continue
        if other.layout.gpus_per_node > facts.count:
            continue
        if fits(other, train_flags(other, base_folder), gib)[0]:
            return (f"memory plan: recipe {other.name} ({other.status} from {origin}, not yet run at full scale) "
                    f"fits these {gib:.1f} GiB GPUs: run `train --recipe {other.name}` "
                    f"(`plan --recipe {other.name}` shows the numbers)")
    return None


def topology_arch(hf_checkpoint: str | None, flags: FlagSet) -> Qwen3NextArchitecture:
    """The architecture run_plan reads, for checking the topology before estimating (the estimate divides
    by the parallel sizes): the checkpoint's, else the built-in one (plan lists a bad config.json itself)."""
    try:
        return load_architecture(_checkpoint_dir(hf_checkpoint, flags))[0]
    except CheckpointError:
        return load_architecture(None)[0]


def run_plan(recipe, flags: FlagSet, gpu_memory_gb_detected: float | None, hw: Hardware = Hardware(), *,
             verbose: bool = False, checked: CheckedShape | None = None) -> tuple[str, dict, bool]:
    """(human text, JSON-able dict, fits) for `runner plan --recipe R`; `verbose`: with the assumptions."""
    gpu_gib, label = _gpu_choice(hw, gpu_memory_gb_detected)
    host = hw.host_memory
    if host is None and gpu_memory_gb_detected and not hw.gpu and not hw.gpu_memory:
        host = host_memory_gib()  # planning for this machine: its RAM is the node's
    ckdir = _checkpoint_dir(hw.hf_checkpoint, flags)
    report = plan_for(recipe, flags, gpu_gib, gpu_label=label, host_memory_gib=host, checkpoint_dir=ckdir,
                      checked=checked)
    text = render(report, assumptions=verbose)
    data = report.to_json()
    if not (hw.gpu or hw.gpu_memory or gpu_memory_gb_detected):
        # Nothing says which GPU: also show the other common size, one line per role.
        other = plan_for(recipe, flags, GPU_PRESETS_GIB["h200"], gpu_label="H200", host_memory_gib=host,
                         checkpoint_dir=ckdir, checked=checked)
        text += "\n\n" + plan_summary([(recipe, flags)], {"H200": GPU_PRESETS_GIB["h200"]}, host_memory_gib=host,
                                      checked={recipe.name: checked} if checked else None)
        data["also"] = {"h200": other.to_json()}
    return text, data, report.fits


def plan_summary(recipes_and_flags, gpus: dict[str, float] | None = None, host_memory_gib: float | None = None,
                 checked: dict[str, CheckedShape] | None = None) -> str:
    """One screen: every recipe x GPU size, one line per role (total / capacity, verdict). `checked`: the
    shapes checked requests derived, by recipe name."""
    gpus = gpus or {"H100": GPU_PRESETS_GIB["h100"], "H200": GPU_PRESETS_GIB["h200"]}
    lines = []
    for recipe, flags in recipes_and_flags:
        tag = "" if recipe.status == "faithful" else f" [{recipe.status}: not yet run at full scale]"
        lines.append(f"{recipe.name}{tag}")
        for gname, mem in gpus.items():
            rep = plan_for(recipe, flags, mem, gpu_label=gname, host_memory_gib=host_memory_gib,
                           checked=(checked or {}).get(recipe.name))
            parts = []
            for r in rep.roles:
                cap = "?" if r.capacity_gib is None else f"{r.capacity_gib:.0f}"
                short = r.name.replace("colocated GPU, ", "").replace(" per node", "")
                why = f" (KV pool short by {r.info['KV pool shortfall']})" if "KV pool shortfall" in r.info else ""
                parts.append(f"{short} {r.total_gib:.0f}/{cap} {r.verdict}{why}")
            verdict = "FITS" if rep.fits else "DOES NOT FIT"
            lines.append(f"  {gname:5} {verdict:12} " + "; ".join(parts))
            if rep.topology_problems:
                lines.extend(f"        topology: {t}" for t in rep.topology_problems)
    return "\n".join(lines)
