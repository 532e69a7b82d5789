"""A run's checkpoint folder: never another run's by accident.

slime (both backends, at the pinned commit) continues from --load when it
holds latest_checkpointed_iteration.txt, and otherwise starts from --ref-load
(Megatron) or the HF weights. slime's scripts point every run at the same
$BASE_FOLDER/Qwen3-Next-80B-A3B-Thinking_slime/, so a new run with another
learning rate would silently continue the last one. Here each run saves into
its own folder, and a fresh run whose --load or --save folder already holds a
checkpoint is refused; continuing is `train --resume RUN`. Pure apart from
reading the tracker file.
"""

from __future__ import annotations

from pathlib import Path

from runner.runs.layout import RUN_JSON

TRACKER = "latest_checkpointed_iteration.txt"


def latest_iteration(folder: str | Path | None) -> str | None:
    """The tracker's content (an iteration number, or "release"), or None without a checkpoint."""
    if not folder:
        return None
    try:
        return (Path(folder) / TRACKER).read_text().strip() or None
    except OSError:
        return None


def owning_run(folder: str | Path) -> Path | None:
    """The run directory whose checkpoints/ this folder is, if any."""
    path = Path(folder).resolve()
    parent = path.parent
    if path.name == "checkpoints" and (parent / RUN_JSON).is_file():
        return parent
    return None


def fresh_start_problem(load: str | None, save: str | None, recipe: str) -> str | None:
    """One line when a fresh run would load or overwrite an existing checkpoint."""
    for flag, folder in (("--load", load), ("--save", save)):
        iteration = latest_iteration(folder)
        if iteration is None:
            continue
        run = owning_run(folder)
        if run is not None:
            how = f"continue it with `python -m runner train --resume {run}`"
        else:
            how = f"continue from it with `python -m runner train --recipe {recipe} --resume {folder}`"
        return (f"{flag} {folder} already holds a checkpoint (iteration {iteration}), and a fresh run never "
                f"reuses one: {how}, or start fresh by dropping --set load/save (each run saves into its own "
                f"folder)")
    return None
