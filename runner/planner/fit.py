"""The memory planner's verdicts on the GPUs at hand: does the recipe fit, and which derived recipe would."""

from __future__ import annotations

from runner.flags import FlagSet
from runner.gpus import GpuFacts
from runner.recipes.base import Recipe


def memory_fit(recipe: Recipe, flags: FlagSet, facts: GpuFacts) -> tuple[bool, list[str], float] | None:
    """The memory planner's verdict on this node's smallest GPU: (fits, reasons, GiB); None without GPUs."""
    from runner import planner

    if not facts.gpus:
        return None
    gib = min(g.memory_gib for g in facts.gpus)
    ok, reasons = planner.fits(recipe, flags, gib)
    return ok, reasons, gib


def fitting_derived_recipe(recipe: Recipe, facts: GpuFacts, base_folder: str) -> str | None:
    """When `recipe` does not fit these GPUs: a one-line pointer to a derived recipe that does, if any."""
    from runner import planner
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
        if planner.fits(other, train_flags(other, base_folder), gib)[0]:
            return (f"memory plan: recipe {other.name} ({other.status} from {origin}, not yet run at full scale) "
                    f"fits these {gib:.1f} GiB GPUs: run `train --recipe {other.name}` "
                    f"(`plan --recipe {other.name}` shows the numbers)")
    return None
