"""`runner plan`: topology and memory planner for slime's Qwen3-Next recipes.

Pure estimation lives in the submodules (params, activations, megatron, fsdp,
sglang, host, estimate); this module is the CLI surface that runner.cli wires:
`add_arguments`, `run_plan`, `fits`, and `plan_summary` for every recipe on
several GPU sizes at once. Method and assumptions: docs/planner.md.
"""

from __future__ import annotations

import argparse
import os

from runner.flags import FlagSet
from runner.planner.checkpoint import (CheckpointError, compare_with_index, index_total_size,
                                       load_architecture)
from runner.planner.estimate import plan
from runner.planner.hardware import GPU_PRESETS_GIB, host_memory_gib
from runner.planner.params import count_params
from runner.planner.report import PlanReport, render

__all__ = ["add_arguments", "run_plan", "topology_check", "fits", "plan_for", "plan_summary", "CheckpointError",
           "GPU_PRESETS_GIB", "load_architecture"]

# Planned for when neither --gpu/--gpu-memory nor a local GPU says otherwise: the seed's headline GPU.
DEFAULT_GPU = "h100"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("plan: hardware to plan for")
    g.add_argument("--gpu", choices=sorted(GPU_PRESETS_GIB), default=None,
                   help="plan for this GPU's memory (default: the local GPUs, else h100; "
                        "with no local GPU, also shows h200)")
    g.add_argument("--gpu-memory", type=float, default=None, metavar="GiB",
                   help="plan for GPUs with this much memory (GiB; wins over --gpu)")
    g.add_argument("--host-memory", type=float, default=None, metavar="GiB",
                   help="host memory per node (default: this machine's when it has the GPUs, else not checked)")
    g.add_argument("--hf-checkpoint", default=None, metavar="DIR",
                   help="read config.json (and model.safetensors.index.json) from DIR instead of the built-in "
                        "Qwen3-Next-80B-A3B config (default: the recipe's --hf-checkpoint when it exists)")


def _checkpoint_dir(args, flags: FlagSet) -> str | None:
    given = getattr(args, "hf_checkpoint", None)
    if given:
        return given
    rendered = flags.value("hf-checkpoint")
    if rendered and os.path.isfile(os.path.join(rendered, "config.json")):
        return rendered
    return None


def _gpu_choice(args, detected: float | None) -> tuple[float, str]:
    if getattr(args, "gpu_memory", None):
        return float(args.gpu_memory), f"{args.gpu_memory:g} GiB GPUs (--gpu-memory)"
    if getattr(args, "gpu", None):
        mem = GPU_PRESETS_GIB[args.gpu]
        return mem, f"{args.gpu.upper()} ({mem:.1f} GiB)"
    if detected:
        return float(detected), f"local GPUs ({detected:.1f} GiB)"
    mem = GPU_PRESETS_GIB[DEFAULT_GPU]
    return mem, f"{DEFAULT_GPU.upper()} ({mem:.1f} GiB, default: no local GPU)"


def plan_for(recipe, flags: FlagSet, gpu_memory_gib: float, *, gpu_label: str | None = None,
             host_memory_gib: float | None = None, checkpoint_dir: str | None = None) -> PlanReport:
    """The report for one recipe (rendered flags) on GPUs of `gpu_memory_gib`."""
    arch, mtp_layers, facts = load_architecture(checkpoint_dir)
    counts = count_params(arch, mtp_layers)
    ck = compare_with_index(counts, index_total_size(checkpoint_dir))
    ck["config"] = facts
    return plan(recipe_name=recipe.name, recipe_status=recipe.status, backend=recipe.backend, flags=flags,
                layout_nodes=recipe.layout.nodes, gpus_per_node=recipe.layout.gpus_per_node, arch=arch,
                mtp_layers=mtp_layers, gpu_gib=gpu_memory_gib,
                gpu_label=gpu_label or f"{gpu_memory_gib:.1f} GiB GPUs", host_gib=host_memory_gib, checkpoint=ck)


def fits(recipe, flags: FlagSet, gpu_memory_gb: float, host_memory_gb: float | None = None) -> tuple[bool, list[str]]:
    """What doctor and train ask before starting: (fits, one-line reasons when it does not)."""
    report = plan_for(recipe, flags, gpu_memory_gb, host_memory_gib=host_memory_gb)
    return report.fits, report.reasons()


def topology_check(args, recipe, flags: FlagSet) -> list[str]:
    """The topology problems of `flags` on the architecture run_plan would read: plan checks these
    before estimating, since the estimate divides by the parallel sizes."""
    from runner.planner.topology import topology_problems

    try:
        arch = load_architecture(_checkpoint_dir(args, flags))[0]
    except CheckpointError:
        arch = load_architecture(None)[0]  # plan lists the config.json problem itself
    return topology_problems(flags, recipe.backend, arch, nodes=recipe.layout.nodes,
                             gpus_per_node=recipe.layout.gpus_per_node)


def run_plan(args, recipe, flags: FlagSet, gpu_memory_gb_detected: float | None) -> tuple[str, dict, bool]:
    """(human text, JSON-able dict, fits) for `runner plan --recipe R`."""
    gpu_gib, label = _gpu_choice(args, gpu_memory_gb_detected)
    host = getattr(args, "host_memory", None)
    if host is None and gpu_memory_gb_detected and not getattr(args, "gpu", None) \
            and not getattr(args, "gpu_memory", None):
        host = host_memory_gib()  # planning for this machine: its RAM is the node's
    ckdir = _checkpoint_dir(args, flags)
    report = plan_for(recipe, flags, gpu_gib, gpu_label=label, host_memory_gib=host, checkpoint_dir=ckdir)
    text = render(report, assumptions=getattr(args, "verbose", False))
    data = report.to_json()
    if not (getattr(args, "gpu", None) or getattr(args, "gpu_memory", None) or gpu_memory_gb_detected):
        # Nothing says which GPU: also show the other common size, one line per role.
        other = plan_for(recipe, flags, GPU_PRESETS_GIB["h200"], gpu_label="H200", host_memory_gib=host,
                         checkpoint_dir=ckdir)
        text += "\n\n" + plan_summary([(recipe, flags)], {"H200": GPU_PRESETS_GIB["h200"]}, host_memory_gib=host)
        data["also"] = {"h200": other.to_json()}
    return text, data, report.fits


def plan_summary(recipes_and_flags, gpus: dict[str, float] | None = None,
                 host_memory_gib: float | None = None) -> str:
    """One screen: every recipe x GPU size, one line per role (total / capacity, verdict)."""
    gpus = gpus or {"H100": GPU_PRESETS_GIB["h100"], "H200": GPU_PRESETS_GIB["h200"]}
    lines = []
    for recipe, flags in recipes_and_flags:
        tag = "" if recipe.status == "faithful" else f" [{recipe.status}: not yet run at full scale]"
        lines.append(f"{recipe.name}{tag}")
        for gname, mem in gpus.items():
            rep = plan_for(recipe, flags, mem, gpu_label=gname, host_memory_gib=host_memory_gib)
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
