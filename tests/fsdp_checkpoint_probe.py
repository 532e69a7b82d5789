"""Run slime 3d7599aa's own FSDP checkpoint save() and load() on CPU (one gloo rank), for
tests/test_resume_point_upstream.py. Usage: python fsdp_checkpoint_probe.py SLIME_TREE SAVE_DIR STEP

  save: save(actor, 19), the data state of rollout 19 as slime's data source writes it, new weights,
        then save(actor, 39) with no data state (the run died between the two saves); prints the
        weights of each save
  load: a fresh actor with args.ckpt_step = STEP (or the tracker's when STEP is -1) goes through
        load() and finalize_load(); prints the loaded weights and start_rollout_id

Stand-ins, for what a CPU machine has not: torch.cuda.synchronize (a no-op) and
torch.cuda.get_rng_state_all (no CUDA generators). The code under test is slime's file, loaded as
is from the tree.
"""

import importlib.util
import json
import os
import sys
from argparse import Namespace
from pathlib import Path
from types import SimpleNamespace

import torch
import torch.distributed as dist

torch.cuda.synchronize = lambda *a, **k: None
torch.cuda.get_rng_state_all = lambda: []


def slime_checkpoint(tree: Path):
    path = tree / "slime" / "backends" / "fsdp_utils" / "checkpoint.py"
    spec = importlib.util.spec_from_file_location("slime_fsdp_checkpoint", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def actor(save_dir: str, ckpt_step, seed: int) -> SimpleNamespace:
    torch.manual_seed(seed)
    model = torch.nn.Linear(4, 3)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model(torch.ones(2, 4)).sum().backward()
    optimizer.step()
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda _: 1.0)
    args = Namespace(save=save_dir, load=save_dir, ckpt_step=ckpt_step, no_load_optim=False, no_load_rng=False,
                     start_rollout_id=None)
    return SimpleNamespace(args=args, model=model, optimizer=optimizer, lr_scheduler=scheduler, global_step=0,
                           micro_step=0)


def main() -> None:
    tree, save_dir, mode = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=sys.argv[4], RANK="0", WORLD_SIZE="1")
    dist.init_process_group("gloo")
    ckpt = slime_checkpoint(tree)
    if mode == "save":
        out = {}
        for rollout, seed in ((19, 1), (39, 2)):
            a = actor(save_dir, None, seed)
            a.global_step = rollout + 1
            ckpt.save(a, rollout)
            out[rollout] = a.model.weight.tolist()
            if rollout == 19:  # slime/rollout/data_source.py RolloutDataSource.save(rollout_id)
                path = os.path.join(save_dir, f"rollout/global_dataset_state_dict_{rollout}.pt")
                os.makedirs(os.path.dirname(path), exist_ok=True)
                torch.save({"sample_offset": 80, "epoch_id": 0, "sample_group_index": 80, "sample_index": 320,
                            "metadata": {}}, path)
        print(json.dumps(out))
    else:
        step = int(sys.argv[5])
        a = actor(save_dir, None if step < 0 else step, 99)
        payload = ckpt.load(a)
        ckpt.finalize_load(a, payload)
        print(json.dumps({"weight": a.model.weight.tolist(), "start_rollout_id": a.args.start_rollout_id,
                          "iteration": payload["iteration"]}))
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
