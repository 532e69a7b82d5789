"""The metric sinks slime already has, kept in the run directory. Pure.

slime 3d7599aa writes TensorBoard event files with --use-tensorboard, into
$TENSORBOARD_DIR when that is set (utils/tensorboard_utils.py; else a
relative tensorboard_log/ in whatever directory the job runs in), and keeps
wandb's files under --wandb-dir (utils/wandb_utils.py; else ./wandb), also
with --wandb-mode offline, for clusters without internet. The runner points
both into the run directory:

    <run dir>/tensorboard/     TENSORBOARD_DIR, in the job's environment (every actor gets it)
    <run dir>/wandb/           --wandb-dir, added only when the flags turn wandb on, before your
                               overrides (so a --wandb-dir of yours wins), so that a run without
                               wandb keeps the script's argv

run.json records both under "sinks".
"""

from __future__ import annotations

import os

from runner.flags import Flag, FlagSet
from runner.slime_args.render import Overrides


def tensorboard_dir(run_dir: str) -> str:
    return os.path.join(run_dir, "tensorboard")


def wandb_dir(run_dir: str) -> str:
    return os.path.join(run_dir, "wandb")


def sink_env(run_dir: str) -> dict[str, str]:
    """Added to the job's runtime env."""
    return {"TENSORBOARD_DIR": tensorboard_dir(run_dir)}


def layers(recipe, base_folder: str, overrides: Overrides, before: tuple, run_dir: str) -> tuple:  # noqa: ANN001
    """The override layers to add after `before` (before the user's `overrides`): --wandb-dir, when the
    flags these layers make turn wandb on."""
    from runner.slime_args.render import train_flags

    layer = wandb_layer(train_flags(recipe, base_folder, overrides, before=before), run_dir)
    return (layer,) if layer else ()


def wandb_layer(flags: FlagSet, run_dir: str) -> Overrides | None:
    """--wandb-dir into the run directory, for flags that turn wandb on and name no --wandb-dir."""
    if not flags.has("use-wandb") or flags.has("wandb-dir"):
        return None
    return Overrides(set_flags=(Flag("wandb-dir", (wandb_dir(run_dir),)),))


def sinks_record(flags: FlagSet, env: dict[str, str]) -> dict:
    """What run.json says about the sinks: where their files go, and whether the flags turn them on."""
    return {
        "tensorboard": {"dir": env.get("TENSORBOARD_DIR"), "on": flags.has("use-tensorboard"),
                        "open": f"tensorboard --logdir {env.get('TENSORBOARD_DIR')}"},
        "wandb": {"dir": flags.value("wandb-dir"), "on": flags.has("use-wandb"),
                  "mode": flags.value("wandb-mode") or "online",
                  "open": (f"wandb sync {flags.value('wandb-dir')}/wandb/offline-run-*"
                           if flags.value("wandb-mode") == "offline" and flags.value("wandb-dir") else None)},
    }
