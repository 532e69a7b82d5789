"""A run's checkpoint folder: never another run's by accident.

slime (both backends, at the pinned commit) continues from --load when it
holds latest_checkpointed_iteration.txt, and otherwise starts from --ref-load
(Megatron) or the HF weights. slime's scripts point every run at the same
$BASE_FOLDER/Qwen3-Next-80B-A3B-Thinking_slime/, so a new run with another
learning rate would silently continue the last one. Here each run saves into
its own folder, and a fresh run whose --load or --save folder already holds a
checkpoint is refused; continuing is `train --resume RUN`. Reads only.

The latest COMPLETE checkpoint (latest_complete). slime writes the tracker
last in both backends, so the tracker's iteration normally is whole; two
things still leave it naming a checkpoint slime cannot truly continue:
- a crash between the actor's save and the rollout manager's (train.py saves
  the model, then `rollout_manager.save`): the tracker names N but there is no
  `rollout/global_dataset_state_dict_*.pt` for it, and slime's data source
  then logs "does not exist" and starts the dataset from its beginning;
- an iter folder without what its backend writes last (a copy or rsync cut
  short, files lost with a node's page cache, a user's clean-up). What each
  backend writes last, at the pins (slime 3d7599aa, Megatron 3714d81d):
  Megatron torch_dist: `metadata.json` (megatron/core/dist_checkpointing/
    serialization.py, save(): "metadata.json is written only if the checkpoint
    is complete", after common.pt, every shard and DCP's .metadata); torch_dcp
    (no common.pt): DCP's `.metadata`, written by the coordinator once every
    rank wrote; the legacy
    torch format: one `mp_rank_*/model_optim_rng.pt` per model-parallel rank;
  FSDP: `meta.json` (slime/backends/fsdp_utils/checkpoint.py, save(): rank 0
    writes it through a temporary file and a rename, after model/, optimizer/,
    lr_scheduler/ and rng.pt, just before the tracker); without `model/`
    slime's FSDP load skips the checkpoint and trains from the HF weights.
A folder newer than the tracker is a save that is still being written or died
(Megatron writes the tracker after its barrier; FSDP after meta.json): never a
checkpoint to resume from. What this cannot see: a save that overwrote an
older folder of the same number and died (Megatron reuses a non-empty folder,
"Overwriting old incomplete / corrupted checkpoint", and keeps its old
metadata.json).

The fallback is slime's own `--ckpt-step N`, never an edit of the tracker (the
folder stays as slime left it). Both backends honour it at the pins:
Megatron's _load_base_checkpoint and get_load_checkpoint_path_by_args
(megatron/training/checkpointing.py) take `args.ckpt_step` in place of the
tracker's iteration; slime's FSDP load() reads iter_{ckpt_step} in place of the
tracker. Megatron tests `if getattr(args, "ckpt_step", None)`, so it ignores
--ckpt-step 0: a Megatron fallback to iteration 0 cannot be expressed
(ResumePoint.problem says so). With the KL reference model on, slime's Megatron
actor loads --ref-load with the same --ckpt-step unless --ref-ckpt-step is
given; a reference checkpoint made by slime's converter has the tracker
"release", whose folder Megatron reads whatever the step.

Backends number the two files differently: Megatron saves rollout r as
iter_r with global_dataset_state_dict_r.pt and continues at r + 1; FSDP saves
rollout r as iter_{r+1} (meta.json's next_rollout_id) with
global_dataset_state_dict_r.pt and continues at r + 1, the folder's number.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from runner.runs.layout import RUN_JSON

TRACKER = "latest_checkpointed_iteration.txt"
ITER_FOLDER = re.compile(r"iter_(\d{7,})")
BACKENDS = ("megatron", "fsdp")


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


def tracker_iteration(folder: str | Path | None) -> int | None:
    """The tracker's iteration as a number; None without a tracker, or for "release" (a converted
    checkpoint, which slime loads as weights only)."""
    text = latest_iteration(folder)
    return int(text) if text is not None and text.isdigit() else None


def iteration_folder(save_dir: str | Path, iteration: int) -> Path:
    return Path(save_dir) / f"iter_{iteration:07d}"


def data_state_file(save_dir: str | Path, iteration: int, backend: str) -> Path:
    """The rollout manager's state saved with checkpoint `iteration` (see the module's docstring)."""
    rollout = iteration - 1 if backend == "fsdp" else iteration
    return Path(save_dir) / "rollout" / f"global_dataset_state_dict_{rollout}.pt"


def saved_iterations(save_dir: str | Path) -> list[int]:
    """Every iter_NNNNNNN folder in save_dir, ascending, whatever its state."""
    try:
        entries = list(Path(save_dir).iterdir())
    except OSError:
        return []
    return sorted(int(m.group(1)) for e in entries if (m := ITER_FOLDER.fullmatch(e.name)) and e.is_dir())


def detect_backend(folder: Path) -> str:
    """Which backend wrote an iter folder: FSDP's has model/ or meta.json; Megatron's neither."""
    return "fsdp" if (folder / "model").is_dir() or (folder / "meta.json").is_file() else "megatron"


def incomplete_reason(save_dir: str | Path, iteration: int, *, global_dataset: bool,
                      backend: str | None = None) -> str | None:
    """Why checkpoint `iteration` cannot be resumed from (its folder's own content and its data
    state; the tracker is the caller's), or None when it is complete. backend None: read from the
    folder (detect_backend)."""
    folder = iteration_folder(save_dir, iteration)
    if not folder.is_dir():
        return f"no {folder.name}/ folder"
    backend = backend or detect_backend(folder)
    if backend == "fsdp":
        if not (folder / "model").is_dir():
            return f"{folder.name}/model/ is missing (slime's FSDP load would skip it and start from the HF weights)"
        if not (folder / "meta.json").is_file():
            return f"{folder.name}/meta.json is missing (FSDP writes it last: the save did not finish)"
    else:
        problem = _megatron_content_problem(folder)
        if problem:
            return problem
    if global_dataset:
        data = data_state_file(save_dir, iteration, backend)
        if not data.is_file():
            return (f"no rollout/{data.name} (the run stopped between the model's save and the data state's; "
                    f"slime would restart the dataset from its beginning)")
    return None


def _megatron_content_problem(folder: Path) -> str | None:
    if (folder / "metadata.json").is_file():
        return None  # torch_dist: written last
    if (folder / ".metadata").is_file() and not (folder / "common.pt").is_file():
        return None  # torch_dcp / fsdp_dtensor: DCP's own marker (torch_dist writes common.pt and .metadata first)
    ranks = sorted(p for p in folder.glob("mp_rank_*") if p.is_dir())
    if ranks:
        missing = [r.name for r in ranks if not (r / "model_optim_rng.pt").is_file()]
        if not missing:
            return None  # the legacy torch format: one file per model-parallel rank
        return f"{folder.name}/{missing[0]}/model_optim_rng.pt is missing (half written)"
    return (f"{folder.name}/metadata.json is missing (Megatron writes it once every shard is saved: the save "
            f"did not finish)")


def complete_iterations(save_dir: str | Path, *, global_dataset: bool, backend: str | None = None) -> list[int]:
    """Checkpoints slime can continue from, ascending: at or before the tracker's iteration, with
    their backend's content and (global_dataset: slime's --rollout-global-dataset, its default) the
    data state. Empty without a numeric tracker."""
    tracker = tracker_iteration(save_dir)
    if tracker is None:
        return []
    return [n for n in saved_iterations(save_dir) if n <= tracker
            and incomplete_reason(save_dir, n, global_dataset=global_dataset, backend=backend) is None]


@dataclass(frozen=True)
class ResumePoint:
    """Where a resume continues. iteration: the checkpoint to load (None: none is complete);
    tracker: what latest_checkpointed_iteration.txt names; skipped: the newer checkpoints that are
    not complete, newest first, each with why."""

    iteration: int | None
    tracker: int | None
    skipped: tuple[tuple[int, str], ...] = ()
    backend: str = "megatron"

    def ckpt_step_args(self) -> tuple[str, ...]:
        """slime's flag that loads `iteration` in place of the tracker's, when they differ."""
        if self.iteration is not None and self.iteration != self.tracker:
            return ("--ckpt-step", str(self.iteration))
        return ()

    @property
    def next_rollout(self) -> int | None:
        """The first rollout id a correct resume from `iteration` trains."""
        if self.iteration is None:
            return None
        return self.iteration if self.backend == "fsdp" else self.iteration + 1

    def problem(self, folder: str | Path) -> str | None:
        """One line when there is nothing to resume from, or no way to ask slime for it."""
        if self.tracker is None:
            return None
        if self.iteration is None:
            why = "; ".join(f"iter_{n:07d}: {reason}" for n, reason in self.skipped)
            return (f"{folder} holds no complete checkpoint ({why}); start a fresh run, or repair the "
                    f"checkpoint folder")
        if self.ckpt_step_args() and self.iteration == 0 and self.backend == "megatron":
            return (f"{folder}: the latest complete checkpoint is iteration 0, and Megatron ignores --ckpt-step 0 "
                    f"(it would load the tracker's iteration {self.tracker}); start a fresh run, or repair "
                    f"iteration {self.tracker}")
        return None

    def note(self) -> str | None:
        """What the resume does about the incomplete checkpoints, for the plan's notes."""
        if not self.skipped:
            return None
        why = "; ".join(f"iter_{n:07d}: {reason}" for n, reason in self.skipped)
        if self.iteration is None:
            return f"no complete checkpoint: {why}"
        if self.ckpt_step_args():
            return (f"the tracker names iteration {self.tracker}, which is not complete ({why}): resuming from "
                    f"iteration {self.iteration}, the latest complete checkpoint, with --ckpt-step "
                    f"{self.iteration} (the tracker is left as slime wrote it; slime rewrites it at its next save)")
        return f"skipped, newer than the tracker's iteration {self.tracker} (a save that did not finish): {why}"


def latest_complete(save_dir: str | Path, *, global_dataset: bool, backend: str | None = None) -> ResumePoint:
    """The newest complete checkpoint in save_dir and the newer ones that are not (see the module's
    docstring). backend: "megatron" or "fsdp"; None reads it from the folders."""
    tracker = tracker_iteration(save_dir)
    saved = saved_iterations(save_dir)
    found = backend or next((detect_backend(iteration_folder(save_dir, n)) for n in reversed(saved)), "megatron")
    if tracker is None:
        return ResumePoint(None, None, (), found)
    skipped: list[tuple[int, str]] = []
    candidates = sorted(set(saved) | {tracker}, reverse=True)
    for n in candidates:
        if n > tracker:
            skipped.append((n, "newer than the tracker's iteration: a save that did not finish"))
            continue
        reason = incomplete_reason(save_dir, n, global_dataset=global_dataset, backend=found)
        if reason is None:
            return ResumePoint(n, tracker, tuple(skipped), found)
        skipped.append((n, reason))
    return ResumePoint(None, tracker, tuple(skipped), found)
