"""nix/packages/cuda-home.nix, built here from NVIDIA's own wheels.

cudaHome joins outputs of nixpkgs' cudaPackages_12_8 (CUDA 12.8.1) with
symlinkJoin and runs its postBuild. nixpkgs cannot be fetched here, so each
output it joins is stood in by the matching files of NVIDIA's PyPI wheels of
the same component versions (CUDA 12.8.1: nvcc 12.8.93, cudart and CCCL
12.8.90, cuBLAS 12.8.4.1, NVRTC 12.8.93, ...), laid out the way nixpkgs'
redist builder splits them (include/, lib/, lib/stubs/). Then the join is
done the way nixpkgs' symlinkJoin does it (lndir of every path, in order)
and the derivation's own postBuild text runs with bash.

What is modelled rather than copied:
- link stubs (lib/stubs/lib*.so): no wheel ships them; placeholders stand in
  (the audit only checks that -l names resolve, nothing loads them);
- cuda_cudart's `stubs` output gets nixpkgs' postInstall: libcuda.so.1 next
  to the stub, and links to both in $stubs/lib
  (pkgs/development/cuda-modules/packages/cuda_cudart.nix);
- bin/nvcc: the wheel has no nvcc driver (only ptxas, nvvm and the headers);
  the audit's recording nvcc stands in for it.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import zipfile
from dataclasses import dataclass
from pathlib import Path

# Toolkit wheels no lock lists, pinned here. Hashes computed in this session
# from PyPI's files (downloaded whole, sha256sum) and equal to the digests
# PyPI's simple index lists for them.
TOOLKIT_WHEELS = {
    "nvidia-cuda-nvcc-cu12": (
        "12.8.93",
        "https://files.pythonhosted.org/packages/86/0a/962e9c861541b08d62ee38a9e9776a46f75b979c75e7236fa7e09b024470/"
        "nvidia_cuda_nvcc_cu12-12.8.93-py3-none-manylinux2010_x86_64.manylinux_2_12_x86_64.whl",
        "2d6dc36fb7cb5ac9c0b8825bc13d193c35487a315664007287d0126531238011",
    ),
    "nvidia-cuda-cccl-cu12": (
        "12.8.90",
        "https://files.pythonhosted.org/packages/c6/96/00037683ebaeefb53e710286871a3e8338d6800466441d26c498331a036d/"
        "nvidia_cuda_cccl_cu12-12.8.90-py3-none-manylinux2014_x86_64.manylinux_2_17_x86_64.whl",
        "575bc5cfb0fe4a1956c539215c0f1e6718821b95a68ef6b7abf226aa87e3a5ad",
    ),
    "nvidia-cuda-profiler-api-cu12": (
        "12.8.90",
        "https://files.pythonhosted.org/packages/cb/2a/f825596c7df1372eb3b6b9048ed9e9eedaf372a9e090e5b1d028792ed30b/"
        "nvidia_cuda_profiler_api_cu12-12.8.90-py3-none-manylinux2014_x86_64.manylinux_2_17_x86_64.whl",
        "ec1f3f50fdda1e3e3744fc1786df3efd1d75a0a46e70629be8816b3a1eda083d",
    ),
}

# CUDA 12.8.1's component versions: the lock's torch wheels bring exactly
# these (uv.lock), so their headers are the toolkit's.
LOCKED_COMPONENTS = {
    "nvidia-cuda-runtime-cu12": "12.8.90",
    "nvidia-cuda-nvrtc-cu12": "12.8.93",
    "nvidia-cublas-cu12": "12.8.4.1",
    "nvidia-curand-cu12": "10.3.9.90",
    "nvidia-cusparse-cu12": "12.5.8.93",
    "nvidia-cusolver-cu12": "11.7.3.90",
    "nvidia-nvtx-cu12": "12.8.90",
}


@dataclass(frozen=True)
class Copy:
    wheel: str  # distribution name
    src: str  # path in the wheel (a file or a directory)
    dest: str  # path in the output


@dataclass(frozen=True)
class Stub:
    dest: str  # placeholder for a link stub the wheels do not ship


@dataclass(frozen=True)
class Link:
    dest: str
    target: str  # relative link target


# (nixpkgs attribute, output) -> its contents, from the wheels.
OUTPUTS: dict[tuple[str, str], list] = {
    ("cuda_nvcc", "out"): [
        Copy("nvidia-cuda-nvcc-cu12", "nvidia/cuda_nvcc/include", "include"),
        Copy("nvidia-cuda-nvcc-cu12", "nvidia/cuda_nvcc/nvvm", "nvvm"),
        Copy("nvidia-cuda-nvcc-cu12", "nvidia/cuda_nvcc/bin/ptxas", "bin/ptxas"),
    ],
    ("cuda_cccl", "out"): [Copy("nvidia-cuda-cccl-cu12", "nvidia/cuda_cccl/include", "include")],
    ("cuda_cudart", "include"): [Copy("nvidia-cuda-runtime-cu12", "nvidia/cuda_runtime/include", "include")],
    ("cuda_cudart", "lib"): [
        Copy("nvidia-cuda-runtime-cu12", "nvidia/cuda_runtime/lib/libcudart.so.12", "lib/libcudart.so.12"),
        Link("lib/libcudart.so", "libcudart.so.12"),
    ],
    # nixpkgs' cuda_cudart postInstall: `ln -sr libcuda.so libcuda.so.1` in
    # $stubs/lib/stubs, then `ln -srt $stubs/lib/ *.so *.so.*` there.
    ("cuda_cudart", "stubs"): [
        Stub("lib/stubs/libcuda.so"),
        Link("lib/stubs/libcuda.so.1", "libcuda.so"),
        Link("lib/libcuda.so", "stubs/libcuda.so"),
        Link("lib/libcuda.so.1", "stubs/libcuda.so.1"),
    ],
    ("cuda_nvrtc", "include"): [Copy("nvidia-cuda-nvrtc-cu12", "nvidia/cuda_nvrtc/include", "include")],
    ("cuda_nvrtc", "stubs"): [Stub("lib/stubs/libnvrtc.so")],
    ("libcublas", "include"): [Copy("nvidia-cublas-cu12", "nvidia/cublas/include", "include")],
    ("libcublas", "stubs"): [Stub("lib/stubs/libcublas.so"), Stub("lib/stubs/libcublasLt.so")],
    ("libcurand", "include"): [Copy("nvidia-curand-cu12", "nvidia/curand/include", "include")],
    ("libcurand", "stubs"): [Stub("lib/stubs/libcurand.so")],
    ("libcusparse", "include"): [Copy("nvidia-cusparse-cu12", "nvidia/cusparse/include", "include")],
    ("libcusolver", "include"): [Copy("nvidia-cusolver-cu12", "nvidia/cusolver/include", "include")],
    ("cuda_nvtx", "include"): [Copy("nvidia-nvtx-cu12", "nvidia/nvtx/include", "include")],
    ("cuda_profiler_api", "include"): [
        Copy("nvidia-cuda-profiler-api-cu12", "nvidia/cuda_profiler_api/include", "include")
    ],
}

# Store path base names of the stand-in's CUDA packages:
# <hash>-cuda12.8-<pname>-12.8-stand-in[-<output>]
PART = re.compile(r"^[a-z0-9]{32}-cuda(?P<cuda>\d+\.\d+)-(?P<pname>[A-Za-z0-9_]+)-(?P=cuda)-stand-in(?:-(?P<output>[a-z]+))?$")


class Unmodelled(Exception):
    """cudaHome joins an output this module has no stand-in for."""


def parse_part(store_path: str) -> tuple[str, str]:
    m = PART.match(Path(store_path).name)
    if m is None:
        raise Unmodelled(f"{store_path}: not a cudaPackages output of the stand-in nixpkgs")
    return m["pname"], m["output"] or "out"


def _extract(zf: zipfile.ZipFile, src: str, dest: Path) -> None:
    names = [n for n in zf.namelist() if n == src or n.startswith(src.rstrip("/") + "/")]
    if not names:
        raise Unmodelled(f"{zf.filename}: no {src}")
    for name in names:
        if name.endswith("/") or name.endswith("__init__.py"):
            continue
        rel = Path(name).relative_to(src) if name != src else Path()
        target = dest / rel if name != src else dest
        target.parent.mkdir(parents=True, exist_ok=True)
        with zf.open(name) as fin, target.open("wb") as fout:
            shutil.copyfileobj(fin, fout)
        if name.endswith((".so", ".so.12")) or "/bin/" in name:
            target.chmod(0o755)


def build_output(pname: str, output: str, dest: Path, wheels: dict[str, Path]) -> None:
    """One nixpkgs output, from the wheels (distribution name -> wheel file)."""
    spec = OUTPUTS.get((pname, output))
    if spec is None:
        raise Unmodelled(f"cudaHome joins {pname}.{output}, which the build audit does not model "
                         "(tools/nix-build-audit/cuda_home.py OUTPUTS)")
    dest.mkdir(parents=True, exist_ok=True)
    for item in spec:
        if isinstance(item, Copy):
            with zipfile.ZipFile(wheels[item.wheel]) as zf:
                _extract(zf, item.src, dest / item.dest)
        elif isinstance(item, Stub):
            (dest / item.dest).parent.mkdir(parents=True, exist_ok=True)
            (dest / item.dest).write_text("stand-in link stub (tools/nix-build-audit/cuda_home.py)\n")
        else:
            (dest / item.dest).parent.mkdir(parents=True, exist_ok=True)
            (dest / item.dest).symlink_to(item.target)


def lndir(src: Path, dest: Path) -> None:
    """xorg's `lndir -silent SRC DEST`, as nixpkgs' symlinkJoin runs it:
    directories are made, files become links to SRC's, links are copied as
    they are, and whatever DEST already has is kept."""
    dest.mkdir(parents=True, exist_ok=True)
    for entry in sorted(os.scandir(src), key=lambda e: e.name):
        target = dest / entry.name
        if entry.is_symlink():
            if not os.path.lexists(target):
                target.symlink_to(os.readlink(entry.path))
        elif entry.is_dir():
            if target.is_symlink():
                continue
            lndir(Path(entry.path), target)
        elif not os.path.lexists(target):
            target.symlink_to(entry.path)


def build(cuda_home: dict, store: Path, wheels: dict[str, Path]) -> Path:
    """The cudaHome derivation (the deep evaluation's attrs) stood in under
    STORE, at its store path's base name; its parts beside it."""
    attrs = cuda_home["attrs"]
    parts = []
    for path in attrs["paths"]:
        pname, output = parse_part(path)
        dest = store / Path(path).name
        if not dest.exists():
            build_output(pname, output, dest, wheels)
        parts.append(dest)
    out = store / Path(cuda_home["out"]).name
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    for part in parts:
        lndir(part, out)
    subprocess.run(["bash", "-euo", "pipefail", "-c", attrs.get("postBuild", "")], cwd=out, check=True,
                   env={"PATH": os.environ["PATH"], "out": str(out)})
    return out


def reachable_driver_stubs(cuda_home: Path) -> list[str]:
    """libcuda.so* files a loader finds in CUDA_HOME's lib dirs (not lib/stubs)."""
    found = []
    for sub in ("lib", "lib64"):
        d = cuda_home / sub
        if d.is_dir():
            found += [f"{sub}/{p.name}" for p in sorted(d.iterdir()) if p.name.startswith("libcuda.so")]
    return found
