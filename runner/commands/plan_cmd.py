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
from runner.commands.common import add_location_arguments, checked_overrides, locations_from_args
from runner.commands.train import add_override_arguments
from runner.gpus import query_gpus
from runner.recipes import RECIPES, get_recipe
from runner.slime_args.render import OverrideError, train_flags
from runner.slime_args.rules import cross_flag_problems


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--recipe", choices=sorted(RECIPES),
                   help="the recipe to plan (default: one line per role for every recipe on H100 and H200)")
    add_override_arguments(p)
    add_location_arguments(p)
    from runner import planner

    planner.add_arguments(p)
    p.add_argument("slime_args", nargs="*", metavar="-- SLIME_ARGS", help="extra slime flags, as for train")


def run(args) -> int:
    from runner import planner

    locs = locations_from_args(args, os.environ)
    recipes = [get_recipe(args.recipe)] if args.recipe else list(RECIPES.values())
    planned, problems = [], [p for p in [inputs.base_folder_problem(locs)] if p]
    for recipe in recipes:
        checked = checked_overrides(args, recipe, str(locs.base))
        prefix = "" if args.recipe else f"{recipe.name}: "
        try:
            flags = train_flags(recipe, str(locs.base), checked.overrides)
        except OverrideError as exc:  # listed; the recipe is planned without the overrides
            problems.append(prefix + str(exc))
            flags = train_flags(recipe, str(locs.base))
        problems += [prefix + p for p in checked.problems + cross_flag_problems(flags, recipe.backend)]
        config = _config_problem(args, flags)
        if config and config not in problems:  # recipes share one checkpoint: say it once
            problems.append(config)
        # Checked before estimating: the estimate divides by the parallel sizes.
        topology = planner.topology_check(args, recipe, flags)
        problems += [prefix + p for p in topology]
        if not topology:
            planned.append((recipe, flags))
    for problem in problems:
        print(f"error: {problem}", file=sys.stderr)
    if problems and not args.dry_run:
        return 2  # with --dry-run: listed above, and the plan of what is valid below
    if args.recipe is None:
        return _summary(args, planned)
    if not planned:
        return 0  # --dry-run: the topology problems are listed above
    recipe, flags = planned[0]
    detected = None
    if getattr(args, "gpu_memory", None) is None and getattr(args, "gpu", None) is None:
        facts = query_gpus()
        if facts.gpus:
            detected = min(g.memory_gib for g in facts.gpus)
    try:
        text, data, fits = planner.run_plan(args, recipe, flags, detected)
    except planner.CheckpointError:
        return 0  # --dry-run: the config.json problem is listed above
    if args.json:
        print(json.dumps(data, indent=2))
    else:
        print(text)
    # plan answers a question; with --dry-run it never fails.
    return 0 if fits or args.dry_run else 1


def _config_problem(args, flags) -> str | None:
    """The checkpoint's config.json, read as doctor and train read it (plan uses it when present)."""
    from runner import planner

    folder = getattr(args, "hf_checkpoint", None) or flags.value("hf-checkpoint")
    if not folder or not (getattr(args, "hf_checkpoint", None) or os.path.exists(os.path.join(folder, "config.json"))):
        return None
    try:
        planner.load_architecture(folder)
    except planner.CheckpointError as exc:
        return str(exc)
    return None


def _summary(args, recipes_and_flags) -> int:
    from runner import planner

    gpus = {"H100": planner.GPU_PRESETS_GIB["h100"], "H200": planner.GPU_PRESETS_GIB["h200"]}
    host = getattr(args, "host_memory", None)
    if args.json:
        data = {r.name: {g: planner.plan_for(r, f, mem, gpu_label=g, host_memory_gib=host).to_json()
                         for g, mem in gpus.items()} for r, f in recipes_and_flags}
        print(json.dumps(data, indent=2))
    else:
        print(planner.plan_summary(recipes_and_flags, gpus, host_memory_gib=host))
        print("\nper-role detail: python -m runner plan --recipe NAME [--gpu h100|h200|b200] [--host-memory GiB]")
    return 0
