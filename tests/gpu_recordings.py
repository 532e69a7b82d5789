"""GPU fact recordings for tests, in nvidia-smi's output formats.

`QUERY_ARGV` in runner/gpus.py prints one CSV line per GPU; `nvidia-smi
topo -m` prints a matrix whose NVLink cells read NV<n>. The H100 lines
follow the format of real H100 SXM output; Blackwell compute capability 10.0
is that of B200.
"""

from __future__ import annotations

from pathlib import Path


def gpu_line(i: int, name: str, mib: int, cc: str) -> str:
    return f"{i}, {name}, {mib}, {cc}, 570.133.20, GPU-{i:08d}-0000-0000-0000-000000000000"


def topo(n: int, nvlink: bool) -> str:
    header = "\t" + "\t".join(f"GPU{i}" for i in range(n)) + "\tCPU Affinity\tNUMA Affinity\n"
    rows = []
    for i in range(n):
        cells = ["X" if i == j else ("NV18" if nvlink else "SYS") for j in range(n)]
        rows.append(f"GPU{i}\t" + "\t".join(cells) + "\t0-63\t0\n")
    return header + "".join(rows)


def record(folder: Path, count: int, name: str = "NVIDIA H100 80GB HBM3", mib: int = 81559, cc: str = "9.0",
           nvlink: bool = True) -> dict:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "query.csv").write_text("".join(gpu_line(i, name, mib, cc) + "\n" for i in range(count)))
    (folder / "topo.txt").write_text(topo(count, nvlink))
    return {"SLIME_RUNNER_GPU_RECORDING": str(folder)}
