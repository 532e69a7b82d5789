"""--keep-checkpoints K: delete a run's older complete checkpoints, keeping the K newest.

slime keeps every checkpoint (about a terabyte each at 80B: runner.planner.
saved). The run's monitor calls prune() after each new checkpoint. What is
never deleted:
- anything when K is None (the option not given);
- the tracker's iteration (what slime and a resume load), even when more than
  K complete checkpoints are newer (they cannot be: it is the newest);
- a checkpoint being written, or one a save left unfinished: newer than the
  tracker, or not complete (runner.runs.checkpoints.incomplete_reason) -
  deleting them is a person's call;
- anything that is not an iter_NNNNNNN folder of slime's or its data state.

A deletion renames the folder to `.iter_NNNNNNN.deleting` first (one rename:
the checkpoint stops counting at once, and a resume never sees half of it),
then removes its data state and the renamed folder; a prune interrupted
between the two finishes the job next time.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from runner.runs.checkpoints import (complete_iterations, data_state_file, detect_backend, iteration_folder,
                                     tracker_iteration)

DELETING_SUFFIX = ".deleting"


def to_prune(save_dir: str | Path, keep: int | None, *, global_dataset: bool) -> list[int]:
    """The iterations prune() would delete, ascending."""
    if keep is None:
        return []
    if keep < 1:
        raise ValueError(f"keep must be at least 1, not {keep}")
    tracker = tracker_iteration(save_dir)
    complete = complete_iterations(save_dir, global_dataset=global_dataset)
    return [n for n in complete[:-keep] if n != tracker]


def prune(save_dir: str | Path, keep: int | None, *, global_dataset: bool) -> list[int]:
    """Delete the complete checkpoints older than the `keep` newest complete ones (and their data
    state); returns the iterations deleted, ascending. Never raises for a file that vanished."""
    save_dir = Path(save_dir)
    _finish_interrupted(save_dir)
    deleted = []
    for n in to_prune(save_dir, keep, global_dataset=global_dataset):
        folder = iteration_folder(save_dir, n)
        backend = detect_backend(folder)
        doomed = folder.with_name(f".{folder.name}{DELETING_SUFFIX}")
        try:
            folder.rename(doomed)
        except OSError:
            continue  # gone already, or not ours to move
        data_state_file(save_dir, n, backend).unlink(missing_ok=True)
        shutil.rmtree(doomed, ignore_errors=True)
        deleted.append(n)
    return deleted


def _finish_interrupted(save_dir: Path) -> None:
    try:
        leftovers = [p for p in save_dir.glob(f".iter_*{DELETING_SUFFIX}") if p.is_dir()]
    except OSError:
        return
    for doomed in leftovers:
        name = doomed.name[1:-len(DELETING_SUFFIX)]
        number = name.removeprefix("iter_")
        if number.isdigit():
            n = int(number)
            data_state_file(save_dir, n, detect_backend(doomed)).unlink(missing_ok=True)
        shutil.rmtree(doomed, ignore_errors=True)
