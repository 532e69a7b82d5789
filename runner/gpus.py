"""GPU facts from nvidia-smi, behind one small interface.

Parsing is pure (tests feed recorded outputs); `query_gpus` runs nvidia-smi.
Set SLIME_RUNNER_GPU_RECORDING=DIR to read DIR/query.csv and DIR/topo.txt
instead (recorded with the commands in `QUERY_ARGV` and `TOPO_ARGV`), to plan
for a machine you are not on.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

QUERY_FIELDS = "index,name,memory.total,compute_cap,driver_version,uuid"
QUERY_ARGV = ("nvidia-smi", f"--query-gpu={QUERY_FIELDS}", "--format=csv,noheader,nounits")
TOPO_ARGV = ("nvidia-smi", "topo", "-m")
RECORDING_ENV = "SLIME_RUNNER_GPU_RECORDING"


@dataclass(frozen=True)
class Gpu:
    index: int
    name: str
    memory_mib: int
    compute_capability: tuple[int, int] | None
    driver_version: str
    uuid: str

    @property
    def memory_gib(self) -> float:
        return self.memory_mib / 1024

    @property
    def is_blackwell(self) -> bool:
        return self.compute_capability is not None and self.compute_capability[0] in (10, 11, 12)

    @property
    def arch_name(self) -> str:
        cc = self.compute_capability
        if cc is None:
            return "unknown"
        return {8: "Ampere/Ada", 9: "Hopper", 10: "Blackwell", 11: "Blackwell", 12: "Blackwell"}.get(cc[0], f"sm_{cc[0]}{cc[1]}")


@dataclass(frozen=True)
class GpuFacts:
    gpus: tuple[Gpu, ...] = ()
    # Number of NVLink entries ("NV<n>") in the topology matrix, as slime's scripts count them.
    nvlink_links: int = 0
    source: str = "none"
    error: str | None = None
    topo: str = field(default="", repr=False)

    @property
    def count(self) -> int:
        return len(self.gpus)

    @property
    def has_nvlink(self) -> bool:
        return self.nvlink_links > 0

    def to_json(self) -> dict:
        return {
            "source": self.source,
            "error": self.error,
            "nvlink_links": self.nvlink_links,
            "gpus": [
                {"index": g.index, "name": g.name, "memory_mib": g.memory_mib,
                 "compute_capability": ".".join(map(str, g.compute_capability)) if g.compute_capability else None,
                 "driver_version": g.driver_version}
                for g in self.gpus
            ],
        }


def parse_query_csv(text: str) -> tuple[Gpu, ...]:
    gpus = []
    for line in text.strip().splitlines():
        cols = [c.strip() for c in line.split(",")]
        if len(cols) < 6:
            continue
        index, name, memory, cc, driver, uuid = cols[:6]
        capability = None
        if re.fullmatch(r"\d+\.\d+", cc):
            major, minor = cc.split(".")
            capability = (int(major), int(minor))
        gpus.append(Gpu(int(index), name, int(float(memory)), capability, driver, uuid))
    return tuple(gpus)


def count_nvlinks(topo_text: str) -> int:
    """Count "NV<n>" cells, exactly like the scripts' `grep -o 'NV[0-9][0-9]*' | wc -l`."""
    return len(re.findall(r"NV[0-9][0-9]*", topo_text))


def facts_from_outputs(query_csv: str, topo_text: str, source: str) -> GpuFacts:
    return GpuFacts(parse_query_csv(query_csv), count_nvlinks(topo_text), source, None, topo_text)


def query_gpus(environ: Mapping[str, str] | None = None, timeout: float = 20.0) -> GpuFacts:
    environ = os.environ if environ is None else environ
    recording = environ.get(RECORDING_ENV)
    if recording:
        folder = Path(recording)
        try:
            query = (folder / "query.csv").read_text()
        except OSError as exc:
            return GpuFacts(source=f"recording {folder}", error=f"cannot read {folder}/query.csv: {exc.strerror}")
        topo_path = folder / "topo.txt"
        topo = topo_path.read_text() if topo_path.exists() else ""
        return facts_from_outputs(query, topo, f"recording {folder}")
    if shutil.which(QUERY_ARGV[0]) is None:
        return GpuFacts(source="nvidia-smi", error="nvidia-smi not found on PATH (no NVIDIA driver on this machine?)")
    try:
        query = subprocess.run(QUERY_ARGV, capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return GpuFacts(source="nvidia-smi", error=f"nvidia-smi failed: {exc}")
    if query.returncode != 0:
        msg = (query.stderr or query.stdout).strip().splitlines()
        return GpuFacts(source="nvidia-smi", error=f"nvidia-smi failed: {msg[-1] if msg else query.returncode}")
    try:
        topo = subprocess.run(TOPO_ARGV, capture_output=True, text=True, timeout=timeout).stdout
    except (OSError, subprocess.TimeoutExpired):
        topo = ""
    return facts_from_outputs(query.stdout, topo, "nvidia-smi")


def nccl_nvls_value(facts: GpuFacts, environ: Mapping[str, str]) -> tuple[str, str]:
    """NCCL_NVLS_ENABLE for the job: the caller's value wins over NVLink detection."""
    if environ.get("NCCL_NVLS_ENABLE") is not None:
        return environ["NCCL_NVLS_ENABLE"], "$NCCL_NVLS_ENABLE"
    return ("1" if facts.has_nvlink else "0"), f"NVLink detection ({facts.nvlink_links} NVLink entries)"
