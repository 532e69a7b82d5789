"""`plan`: per-GPU memory estimate and topology check of a recipe, before launch.

Reads the model's config.json when a checkpoint is present, else the built-in
Qwen3-Next-80B-A3B architecture; GPU memory comes from the local GPUs, or
--gpu-memory / --gpu to plan for another machine.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from runner.checks import inputs
from runner.checks.request import CheckedRequest, check_request
from runner.commands.options import (add_location_arguments, add_override_arguments, locations_from_args,
                                     override_layer_from_args)
from runner.flags import FlagSet
from runner.gpus import query_gpus
from runner.planner import Hardware
from runner.recipes import RECIPES, get_recipe


def add_arguments(p: argparse.ArgumentParser) -> None:
    from runner.planner.hardware import GPU_PRESETS_GIB

    p.add_argument("--recipe", choices=sorted(RECIPES),
                   help="the recipe to plan (default: one line per role for every recipe on H100 and H200)")
    add_override_arguments(p)
    add_location_arguments(p)
    g = p.add_argument_group("plan: hardware to plan for")
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
    p.add_argument("slime_args", nargs="*", metavar="-- SLIME_ARGS", help="extra slime flags, as for train")


def hardware_from_args(args: argparse.Namespace) -> Hardware:
    return Hardware(gpu=getattr(args, "gpu", None), gpu_memory=getattr(args, "gpu_memory", None),
                    host_memory=getattr(args, "host_memory", None), hf_checkpoint=getattr(args, "hf_checkpoint", None))


def run(args) -> int:
    from runner import planner

    hardware = hardware_from_args(args)
    locs = locations_from_args(args, os.environ)
    recipes = [get_recipe(args.recipe)] if args.recipe else list(RECIPES.values())
    planned, problems = [], [p for p in [inputs.base_folder_problem(locs)] if p]
    for recipe in recipes:
        # Topology is checked on the architecture the estimate reads, before estimating (it divides by the sizes).
        request = check_request(recipe, str(locs.base), override_layer_from_args(args),
                                arch_of=lambda flags: planner.topology_arch(hardware.hf_checkpoint, flags),
                                runner_options=getattr(args, "own_options", None) or ())
        prefix = "" if args.recipe else f"{recipe.name}: "
        if request.fatal:  # listed; the recipe is planned without the overrides
            problems.append(prefix + request.fatal)
        problems += [prefix + p for p in request.override_problems + request.rule_problems]
        config = _config_problem(hardware.hf_checkpoint, request.flags)
        if config and config not in problems:  # recipes share one checkpoint: say it once
            problems.append(config)
        problems += [prefix + p for p in request.topology]
        if not request.topology:
            planned.append(request)
    for problem in problems:
        print(f"error: {problem}", file=sys.stderr)
    if problems and not args.dry_run:
        return 2  # with --dry-run: listed above, and the plan of what is valid below
    if args.recipe is None:
        return _summary(args, hardware, planned)
    if not planned:
        return 0  # --dry-run: the topology problems are listed above
    request = planned[0]
    detected = None
    if hardware.gpu_memory is None and hardware.gpu is None:
        facts = query_gpus()
        if facts.gpus:
            detected = min(g.memory_gib for g in facts.gpus)
    try:
        text, data, fits = planner.run_plan(request.recipe, request.flags, detected, hardware,
                                            verbose=getattr(args, "verbose", False), checked=request.checked_shape)
    except planner.CheckpointError:
        return 0  # --dry-run: the config.json problem is listed above
    if args.json:
        print(json.dumps(data, indent=2))
    else:
        print(text)
    # plan answers a question; with --dry-run it never fails.
    return 0 if fits or args.dry_run else 1


def _config_problem(hf_checkpoint: str | None, flags: FlagSet) -> str | None:
    """The checkpoint's config.json, read as doctor and train read it (plan uses it when present)."""
    from runner import planner

    folder = hf_checkpoint or flags.value("hf-checkpoint")
    if not folder or not (hf_checkpoint or os.path.exists(os.path.join(folder, "config.json"))):
        return None
    try:
        planner.load_architecture(folder)
    except planner.CheckpointError as exc:
        return str(exc)
    return None


def _summary(args: argparse.Namespace, hardware: Hardware, requests: list[CheckedRequest]) -> int:
    from runner import planner

    gpus = {"H100": planner.GPU_PRESETS_GIB["h100"], "H200": planner.GPU_PRESETS_GIB["h200"]}
    host = hardware.host_memory
    checked = {r.recipe.name: r.checked_shape for r in requests}
    if args.json:
        data = {r.recipe.name: {g: planner.plan_for(r.recipe, r.flags, mem, gpu_label=g, host_memory_gib=host,
                                                    checked=r.checked_shape).to_json()
                                for g, mem in gpus.items()} for r in requests}
        print(json.dumps(data, indent=2))
    else:
        print(planner.plan_summary([(r.recipe, r.flags) for r in requests], gpus, host_memory_gib=host,
                                   checked=checked))
        print("\nper-role detail: python -m runner plan --recipe NAME [--gpu h100|h200|b200] [--host-memory GiB]")
    return 0
