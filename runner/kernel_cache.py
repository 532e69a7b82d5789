"""Kernel caches that outlive a run: Triton, flashinfer's JIT, torch extensions.

The first fla forward+backward in a fresh process spends minutes compiling
and autotuning Triton kernels (FACTS.md: 114-170 s on H100/H200; smoke's step
1 took 141.5 s cold and 3.6 s warm on one H200). Those results are keyed by
kernel source, GPU and compiler, so one directory per user can serve every
run. Each cache gets a subdirectory of one root:

  --kernel-cache DIR     every cache under DIR (wins over the environment)
  otherwise              a variable already set in the environment wins for
                         its cache; the rest go under
                         ${XDG_CACHE_HOME:-~/.cache}/slime-qwen3-next/kernels

The variables reach every process of the job through the Ray runtime env,
on every node: with the default (local disk) each node compiles once; point
--kernel-cache at shared storage to compile once per cluster. Pure: reads the
environment mapping it is given, creates nothing (each library makes its own
directory on first use).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Mapping

# variable -> subdirectory of the root. flashinfer appends .cache/flashinfer
# to FLASHINFER_WORKSPACE_BASE (flashinfer/jit/env.py); the others are used as is.
CACHE_VARS = {
    "TRITON_CACHE_DIR": "triton",
    "FLASHINFER_WORKSPACE_BASE": "flashinfer",
    "TORCH_EXTENSIONS_DIR": "torch_extensions",
}
APP_DIR = "slime-qwen3-next"


@dataclass(frozen=True)
class KernelCache:
    env: dict[str, str]
    # variable -> "--kernel-cache", "$VAR" or "default"
    sources: dict[str, str] = field(default_factory=dict)

    def describe(self) -> list[str]:
        return [f"{k} = {v} (from {self.sources[k]})" for k, v in self.env.items()]


def default_root(environ: Mapping[str, str]) -> str:
    base = environ.get("XDG_CACHE_HOME") or os.path.join(environ.get("HOME") or os.path.expanduser("~"), ".cache")
    return os.path.join(base, APP_DIR, "kernels")


def resolve_kernel_cache(flag_root: str | None, environ: Mapping[str, str], cwd: str | None = None) -> KernelCache:
    env: dict[str, str] = {}
    sources: dict[str, str] = {}
    cwd = cwd or os.getcwd()

    def absolute(path: str) -> str:
        # Jobs run in another working directory: absolute paths only.
        return os.path.normpath(os.path.join(cwd, os.path.expanduser(path)))

    if flag_root:
        root = absolute(flag_root)
        for var, sub in CACHE_VARS.items():
            env[var], sources[var] = os.path.join(root, sub), "--kernel-cache"
        return KernelCache(env, sources)
    root = absolute(default_root(environ))
    for var, sub in CACHE_VARS.items():
        if environ.get(var):
            env[var], sources[var] = absolute(environ[var]), f"${var}"
        else:
            env[var], sources[var] = os.path.join(root, sub), "default"
    return KernelCache(env, sources)


def cache_entries(path: str) -> int | None:
    """Entries directly in a cache directory (a cheap cold/warm hint); None if absent."""
    try:
        with os.scandir(path) as it:
            return sum(1 for _ in it)
    except OSError:
        return None
