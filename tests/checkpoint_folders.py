"""Checkpoint folders laid out as slime 3d7599aa and Megatron-LM 3714d81d write them, for tests.

Megatron (torch_dist, megatron/training/checkpointing.py save_checkpoint + dist_checkpointing.save):
`iter_{rollout:07d}/` holding the shards (`__R_0.distcp`), DCP's `.metadata`, `common.pt`, and
`metadata.json` written last; then the tracker. FSDP (slime/backends/fsdp_utils/checkpoint.py save):
`iter_{rollout+1:07d}/` with model/, optimizer/, lr_scheduler/ (each a DCP folder), rng.pt, and
meta.json written last; then the tracker. The rollout manager then saves
`rollout/global_dataset_state_dict_{rollout}.pt` (slime/rollout/data_source.py). Contents are
placeholders: what is checked is which files exist.
"""

from __future__ import annotations

import json
from pathlib import Path

TRACKER = "latest_checkpointed_iteration.txt"


def save(folder: Path, rollout: int, backend: str = "megatron", *, finished: bool = True,
         data_state: bool = True, tracker: bool = True) -> Path:
    """What slime's save of `rollout` leaves. finished=False: the save died half way (no last file,
    no tracker update); data_state=False: the run died between the model's save and the data state's."""
    folder.mkdir(parents=True, exist_ok=True)
    iteration = rollout + 1 if backend == "fsdp" else rollout
    it = folder / f"iter_{iteration:07d}"
    if backend == "fsdp":
        for sub in ("model", "optimizer", "lr_scheduler"):
            (it / sub).mkdir(parents=True, exist_ok=True)  # rank 0 makes all four first
        (it / "model" / "__0_0.distcp").write_bytes(b"\0" * 256)
        if not finished:
            return it
        for sub in ("model", "optimizer", "lr_scheduler"):
            (it / sub / "__0_0.distcp").write_bytes(b"\0" * 256)
            (it / sub / ".metadata").write_bytes(b"\0" * 16)
        (it / "rng.pt").write_bytes(b"\0" * 16)
        (it / "meta.json").write_text(json.dumps({"iteration": iteration, "rollout_id": rollout,
                                                  "next_rollout_id": rollout + 1, "global_step": rollout + 1}))
    else:
        it.mkdir(parents=True, exist_ok=True)
        (it / "common.pt").write_bytes(b"\0" * 64)
        (it / "__0_0.distcp").write_bytes(b"\0" * 256)
        if not finished:
            return it
        (it / "__1_0.distcp").write_bytes(b"\0" * 256)
        (it / ".metadata").write_bytes(b"\0" * 16)
        (it / "metadata.json").write_text(json.dumps({"sharded_backend": "torch_dist", "sharded_backend_version": 1,
                                                      "common_backend": "torch", "common_backend_version": 1}))
    if tracker:
        (folder / TRACKER).write_text(str(iteration))
    if data_state:
        (folder / "rollout").mkdir(exist_ok=True)
        (folder / "rollout" / f"global_dataset_state_dict_{rollout}.pt").write_bytes(b"\0" * 32)
    return it
