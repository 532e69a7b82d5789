"""What FSDP2 CPU offload puts on the GPU while slime loads a checkpoint, and what a step leaves reserved.

Mirrors slime 3d7599aa's _fsdp2_load_full_state_dict under --fsdp-cpu-offload
on one GPU: fully_shard every block and the root with CPUOffloadPolicy,
model.to(cuda), set_model_state_dict(full_state_dict, cpu_offload,
broadcast_from_rank0), model.to("cpu"); then one AdamW step and what the
CUDA cache keeps without empty_cache (slime's colocated weight sync under
--fsdp-cpu-offload: docs/planner.md). A GPU machine with torch:

    python3 bench/fsdp_offload_load_probe.py
"""

import os

import torch
import torch.distributed as dist
import torch.nn as nn
from torch.distributed.checkpoint.state_dict import StateDictOptions, set_model_state_dict
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.fsdp import CPUOffloadPolicy, MixedPrecisionPolicy, fully_shard

MIB = 1 << 20


class Block(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Linear(4096, 4096, bias=False)  # fp32: 64 MiB

    def forward(self, x):  # noqa: ANN001, ANN201
        return self.w(x)


def gpu(label: str) -> None:
    torch.cuda.synchronize()
    print(f"{label}: allocated {torch.cuda.memory_allocated() / MIB:.1f} MiB, reserved "
          f"{torch.cuda.memory_reserved() / MIB:.1f} MiB, peak allocated {torch.cuda.max_memory_allocated() / MIB:.1f} MiB",
          flush=True)


def main() -> None:
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ.setdefault("MASTER_PORT", "29533")
    dist.init_process_group("cuda:nccl,cpu:gloo", rank=0, world_size=1)
    torch.cuda.set_device(0)
    mesh = init_device_mesh("cuda", (1,), mesh_dim_names=("dp",))
    model = nn.Sequential(*[Block() for _ in range(10)], nn.Linear(4096, 4096, bias=False))  # 11 x 64 MiB
    full_state = model.state_dict()
    policy = dict(mp_policy=MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32),
                  offload_policy=CPUOffloadPolicy(), mesh=mesh)
    for block in model:
        if isinstance(block, Block):
            fully_shard(block, **policy)
    fully_shard(model, **policy)
    torch.cuda.reset_peak_memory_stats()
    model = model.to(device=torch.cuda.current_device(), non_blocking=True)
    first = next(model.parameters())
    gpu("after model.to(cuda)")
    print(f"  a parameter's shard is on {first.device}, pinned: {first._local_tensor.is_pinned()}")
    set_model_state_dict(model, full_state,
                         options=StateDictOptions(full_state_dict=True, cpu_offload=True, broadcast_from_rank0=True))
    gpu("after set_model_state_dict")
    model.to("cpu", non_blocking=True)
    gpu("after model.to(cpu)")
    x = torch.randn(8192, 4096, device="cuda")
    opt = torch.optim.AdamW(model.parameters())
    model(x).float().pow(2).mean().backward()
    opt.step()
    opt.zero_grad(set_to_none=True)
    del x
    gpu("after one step, no empty_cache")
    torch.cuda.empty_cache()
    gpu("after empty_cache")
    print(f"torch {torch.__version__}")
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
