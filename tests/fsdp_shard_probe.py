"""Under torchrun (gloo, CPU): shard a small Qwen3-Next as slime does and report every rank's shard sizes.

    python -m torch.distributed.run --standalone --nproc-per-node N tests/fsdp_shard_probe.py CONFIG.json OUT_DIR

Each rank writes OUT_DIR/rank<r>.json: the model's parameter shapes before
sharding, and per parameter the elements this rank owns (`to_local()`) and
the elements FSDP2 allocated for its shard (the local tensor's storage: the
padded shard). The wrapping is runner.smoke.sharding.apply_fsdp2 (slime's
apply_fsdp2) with CPUOffloadPolicy; pin_memory is off because this machine
has no CUDA (pinning does not change sizes).
"""

import json
import sys
from pathlib import Path

import torch
import torch.distributed as dist
from transformers import Qwen3NextConfig, Qwen3NextForCausalLM

from runner.smoke.sharding import apply_fsdp2


def main(config_path: str, out_dir: str) -> None:
    dist.init_process_group("gloo")
    rank = dist.get_rank()
    cfg = Qwen3NextConfig(**json.loads(Path(config_path).read_text()))
    torch.manual_seed(0)
    model = Qwen3NextForCausalLM(cfg)
    shapes = {n: list(p.shape) for n, p in model.named_parameters()}
    apply_fsdp2(model, cpu_offload=True, pin_memory=False)
    shards = {}
    for name, p in model.named_parameters():
        local = p.to_local()
        shards[name] = {"own": local.numel(), "allocated": local.untyped_storage().nbytes() // local.element_size(),
                        "device": str(local.device)}
    out = {"rank": rank, "world_size": dist.get_world_size(), "shapes": shapes, "shards": shards}
    Path(out_dir, f"rank{rank}.json").write_text(json.dumps(out))
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":  # PYTHONPATH: the repository (for runner.smoke.sharding)
    main(sys.argv[1], sys.argv[2])
