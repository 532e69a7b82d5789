"""What `train` says and checks about a long run before it starts: the checkpoints it will save
(size, count, --keep-checkpoints), the free disk at --save, notifications. Reads only."""

from __future__ import annotations

import os
from typing import Mapping

from runner.flags import FlagSet
from runner.planner.saved import SavePlan, human_bytes, save_plan, scaled_to_index
from runner.runs.checkpoints import complete_iterations
from runner.runs.disk import disk_problem, free_bytes
from runner.runs.notify import WEBHOOK_ENV, Notifier
from runner.runs.setup import RunSetup


def run_save_plan(setup: RunSetup, flags: FlagSet, backend: str) -> SavePlan:
    """The checkpoints this run writes, of the model `plan` estimates (the recipe's --hf-checkpoint
    config.json when it has one, else the built-in 80B), scaled to that checkpoint's index when it has
    one (runner.planner.saved.scaled_to_index)."""
    from runner.planner.checkpoint import CheckpointError, index_total_size, load_architecture
    from runner.planner.params import count_params

    hf = flags.value("hf-checkpoint")
    hf = hf if hf and os.path.isfile(os.path.join(hf, "config.json")) else None
    try:
        arch, mtp, _ = load_architecture(hf)
    except CheckpointError:
        arch, mtp, _ = load_architecture(None)  # the checkpoint checks say what is wrong with it
    counts = scaled_to_index(count_params(arch, mtp), index_total_size(hf))
    point = setup.resume_point
    start = (point.next_rollout or 0) if point is not None else 0
    global_dataset = not flags.has("disable-rollout-global-dataset")
    existing = len(complete_iterations(setup.checkpoint_dir, global_dataset=global_dataset)) if setup.resumed_from else 0
    return save_plan(backend, flags, counts, start=start,
                     keep=setup.long_run.get("keep_checkpoints"), existing=existing)


def long_run_notes(setup: RunSetup, flags: FlagSet, saving: SavePlan, environ: Mapping[str, str]) -> list[str]:
    save = flags.value("save") or setup.checkpoint_dir
    free = free_bytes(save) if save else None
    disk = f"; {human_bytes(free)} free at {save}" if free is not None else ""
    notifier = Notifier(setup.long_run.get("notify_cmd"), WEBHOOK_ENV, environ=environ)
    return [f"saves: {saving.describe()}{disk}", notifier.describe()]


def long_run_problems(setup: RunSetup, flags: FlagSet, saving: SavePlan) -> list[str]:
    """The disk check, once the model it sizes is there: without --hf-checkpoint's config.json the
    checkpoint checks already stop the run (and the size would be the built-in model's)."""
    save = flags.value("save") or setup.checkpoint_dir
    hf = flags.value("hf-checkpoint")
    if not save or not hf or not os.path.isfile(os.path.join(hf, "config.json")):
        return []
    return [p for p in [disk_problem(save, saving)] if p]
