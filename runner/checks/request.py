"""One validation pipeline: (recipe, base folder, override layers) -> a checked request.

train, plan, doctor and `train --resume` all come through `check_request`:
the recipe's flags are rendered once to check the overrides against, the
final flags once more with every layer applied, the training shape (layout
and parallelism) is derived from them once, and every problem and warning is
listed by kind: the overrides against slime's flag schema (this invocation's
and a resumed run's recorded ones), slime's cross-flag and value rules
(runner.slime_args.rules, VALUE_RULES included), the topology. Each command
lists them where its output says them; the memory planner takes the shape as
it is (runner.planner.estimate). Pure: reads nothing but the flag schema.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterable

from runner.flags import FlagSet
from runner.planner.topology import CheckedShape, check_shape, tp_cp_warning
from runner.recipes.base import Recipe
from runner.recipes.qwen3_next import QWEN3_NEXT_80B, Qwen3NextArchitecture
from runner.slime_args.overrides import check_overrides
from runner.slime_args.render import OverrideError, Overrides, recipe_flags, train_flags
from runner.slime_args.rules import cross_flag_problems


@dataclass(frozen=True)
class OverrideLayer:
    """Overrides in command-line form, as the user gave them and run.json records them."""

    set: tuple[str, ...] = ()
    unset: tuple[str, ...] = ()
    low_memory: bool = False
    extra_argv: tuple[str, ...] = ()

    @classmethod
    def from_record(cls, layer: dict) -> "OverrideLayer":
        return cls(tuple(layer.get("set", ())), tuple(layer.get("unset", ())), bool(layer.get("low_memory")),
                   tuple(layer.get("extra_argv", ())))

    def to_record(self) -> dict:
        return {"set": list(self.set), "unset": list(self.unset), "low_memory": self.low_memory,
                "extra_argv": list(self.extra_argv)}


@dataclass
class CheckedRequest:
    recipe: Recipe
    overrides: Overrides  # this invocation's, as checked (what passed)
    before: tuple[Overrides, ...]  # applied first: a resumed run's recorded layers, then the fixed ones
    flags: FlagSet  # rendered once, every layer applied (without them when `fatal`)
    checked_shape: CheckedShape
    # A layer that cannot be applied at all (e.g. --low-memory on FSDP): train refuses at once; plan goes
    # on with the recipe's own flags.
    fatal: str | None = None
    override_problems: list[str] = field(default_factory=list)  # this invocation's, against slime's flags
    replay_problems: list[str] = field(default_factory=list)  # a resumed run's recorded overrides
    rule_problems: list[str] = field(default_factory=list)  # slime's cross-flag and value rules
    warnings: list[str] = field(default_factory=list)

    @property
    def topology(self) -> list[str]:
        return list(self.checked_shape.problems)


def check_request(recipe: Recipe, base_folder: str, given: OverrideLayer = OverrideLayer(), *,
                  replay: Iterable[OverrideLayer] = (), replayed_run: str | None = None,
                  fixed: tuple[Overrides, ...] = (),
                  more_layers: Callable[[FlagSet], tuple[Overrides, ...]] | None = None,
                  arch_of: Callable[[FlagSet], Qwen3NextArchitecture] = lambda flags: QWEN3_NEXT_80B,
                  runner_options: Iterable[str] = (), allow_unknown: bool = False) -> CheckedRequest:
    """`replay`: a resumed run's recorded layers (of run `replayed_run`), checked again as the command
    line that gave them was; `fixed`: layers after them (the run's checkpoint folder); `more_layers`: layers
    that depend on the flags these make (the run's wandb dir), added after `fixed`; `arch_of`: the model's
    architecture once the flags say which checkpoint; `allow_unknown`: a launch test's entrypoint takes
    flags slime does not know."""
    schema_flags = recipe_flags(recipe, base_folder)
    checked = check_overrides(recipe, schema_flags, set_texts=given.set, unset=given.unset,
                              extra_argv=given.extra_argv, low_memory=given.low_memory,
                              runner_options=runner_options, allow_unknown=allow_unknown)
    replayed: list[Overrides] = []
    replay_problems: list[str] = []
    for layer in replay:
        again = check_overrides(recipe, schema_flags, set_texts=layer.set, unset=layer.unset,
                                extra_argv=layer.extra_argv, low_memory=layer.low_memory, allow_unknown=allow_unknown)
        replay_problems += [f"--resume {replayed_run}: a recorded override: {p}" for p in again.problems]
        replayed.append(again.overrides)
    before = (*replayed, *fixed)
    fatal = None
    try:
        flags = train_flags(recipe, base_folder, checked.overrides, before=before)
        more = more_layers(flags) if more_layers else ()
        if more:
            before += more
            flags = train_flags(recipe, base_folder, checked.overrides, before=before)
    except OverrideError as exc:
        fatal = str(exc)
        flags = train_flags(recipe, base_folder)
    shape = check_shape(flags, recipe.backend, arch_of(flags), nodes=recipe.layout.nodes,
                        gpus_per_node=recipe.layout.gpus_per_node)
    try:
        warning = tp_cp_warning(flags, recipe.backend, shape.shape.parallel if shape.shape else None)
    except ValueError:  # a size that is not a number: the overrides' problems say so
        warning = None
    return CheckedRequest(recipe, checked.overrides, before, flags, shape, fatal=fatal,
                          override_problems=list(checked.problems), replay_problems=replay_problems,
                          rule_problems=cross_flag_problems(flags, recipe.backend),
                          warnings=[warning] if warning else [])
