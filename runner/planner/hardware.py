"""GPU memory sizes the planner can plan for without the GPU at hand.

Totals as NVML/nvidia-smi report them for the SXM parts (MiB), in GiB: what
sglang's mem-fraction-static multiplies and what PyTorch can allocate from.
"""

from __future__ import annotations

GPU_PRESETS_GIB = {
    "h100": 81559 / 1024,  # H100 80GB HBM3
    "h200": 143771 / 1024,  # H200 141GB HBM3e
    "b200": 183359 / 1024,  # B200 (Megatron on Blackwell is unsupported upstream)
}


def host_memory_gib(meminfo: str = "/proc/meminfo") -> float | None:
    """MemTotal of this machine, or None when unreadable."""
    try:
        with open(meminfo) as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) / (1 << 20)
    except (OSError, ValueError, IndexError):
        return None
    return None
