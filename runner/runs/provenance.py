"""The software a run used, for run.json: runner revision, pins, flake inputs,
store paths, package versions in the job's environment.

Reads files and runs two short subprocesses (git, and the job's Python to
read package metadata with the job's PYTHONPATH); never imports torch or
Ray. Anything it cannot find is recorded as null, not guessed.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from pathlib import Path
from typing import Mapping

from runner import __version__

REPO = Path(__file__).resolve().parents[2]
# The flake names its own revision and lock file (the runner it installs has
# no .git and no flake.lock beside it): nix/apps.nix exports these; the
# devShell exports the lock only (its runner is the checkout, whose git says).
REVISION_ENV = "SLIME_RUNNER_REVISION"  # self.rev, or self.dirtyRev ("<rev>-dirty")
FLAKE_LOCK_ENV = "SLIME_RUNNER_FLAKE_LOCK"
# Store paths the flake's apps and devShell export: name in run.json -> variable.
STORE_PATH_ENV = {
    "env": "SLIME_RUNNER_NIX_ENV",
    "flake.lock": FLAKE_LOCK_ENV,
    "pins": "SLIME_RUNNER_PINS",
    "cuda-home": "CUDA_HOME",
    "cudnn": "CUDNN_PATH",
}

# Distribution names as pip knows them; megatron and slime run from checkouts
# on PYTHONPATH, so their version comes from the files there.
KEY_PACKAGES = ("torch", "sglang", "sgl-kernel", "flashinfer-python", "transformers", "flash-linear-attention",
                "fla-core", "causal-conv1d", "transformer-engine", "megatron-core", "ray", "triton", "numpy")

# Runs in the job's interpreter with the job's PYTHONPATH: metadata only, no imports of the packages.
_PROBE = r"""
import importlib.metadata as md, importlib.util as u, json, re, sys
out = {"python": sys.version.split()[0]}
for name in sys.argv[1:]:
    try:
        out[name] = md.version(name)
    except md.PackageNotFoundError:
        out[name] = None
spec = u.find_spec("megatron")
if spec and spec.submodule_search_locations:
    path = list(spec.submodule_search_locations)[0]
    try:
        text = open(path + "/core/package_info.py").read()
        parts = [re.search(k + r"\s*=\s*([0-9]+)", text) for k in ("MAJOR", "MINOR", "PATCH")]
        pre = re.search(r"PRE_RELEASE\s*=\s*['\"]([^'\"]*)", text)
        out["megatron-lm"] = ".".join(p.group(1) for p in parts) + (pre.group(1) if pre else "")
    except (OSError, AttributeError):
        out["megatron-lm"] = None
    out["megatron-lm path"] = path
for mod in ("slime",):
    spec = u.find_spec(mod)
    out[mod + " path"] = list(spec.submodule_search_locations)[0] if spec and spec.submodule_search_locations else None
print(json.dumps(out))
"""


def pins_digest(environ: Mapping[str, str]) -> dict:
    from runner.checks.stack import pins_path

    path = pins_path(environ)
    try:
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        digest = None
    return {"path": str(path), "sha256": digest}


def flake_inputs(environ: Mapping[str, str]) -> dict | None:
    """Each locked flake input: owner/repo, rev, narHash (from flake.lock)."""
    path = Path(environ.get(FLAKE_LOCK_ENV) or REPO / "flake.lock")
    try:
        lock = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    out = {"path": str(path)}
    for name, node in sorted((lock.get("nodes") or {}).items()):
        locked = node.get("locked")
        if not locked:
            continue
        out[name] = {k: locked.get(k) for k in ("type", "owner", "repo", "rev", "narHash", "lastModified")
                     if locked.get(k) is not None}
    return out


def _git(args: list[str], cwd: Path) -> str | None:
    try:
        r = subprocess.run(["git", "-C", str(cwd), *args], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return r.stdout.strip() if r.returncode == 0 else None


def git_revision(path: str | Path | None) -> dict | None:
    if not path or not (Path(path) / ".git").exists():
        return None
    rev = _git(["rev-parse", "HEAD"], Path(path))
    if rev is None:
        return None
    status = _git(["status", "--porcelain", "--untracked-files=no"], Path(path))
    return {"rev": rev, "dirty": bool(status)}


def runner_source(environ: Mapping[str, str]) -> dict:
    out: dict = {"version": __version__, "path": str(REPO)}
    if environ.get(REVISION_ENV):
        rev = environ[REVISION_ENV]
        out.update({"rev": rev, "dirty": rev.endswith("-dirty"), "source": f"${REVISION_ENV}"})
    else:
        out.update(git_revision(REPO) or {"rev": None})
    return out


def store_paths(paths: Mapping[str, str | None]) -> dict:
    """Those of the given paths that live in the Nix store (run from the flake).
    A path given as a store path is kept as given (the env's bin/python, not
    the interpreter its link resolves to); another one is resolved."""
    out = {}
    for name, path in paths.items():
        if not path:
            continue
        if path.startswith("/nix/store/"):
            out[name] = path
        elif os.path.realpath(path).startswith("/nix/store/"):
            out[name] = os.path.realpath(path)
    return out


def job_packages(python: str, pythonpath: str | None, timeout: float = 60.0) -> dict:
    env = {**os.environ}
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    try:
        r = subprocess.run([python, "-c", _PROBE, *KEY_PACKAGES], capture_output=True, text=True, env=env,
                           timeout=timeout)
        return json.loads(r.stdout) if r.returncode == 0 else {"error": r.stderr.strip()[-300:]}
    except (OSError, subprocess.TimeoutExpired, ValueError) as exc:
        return {"error": str(exc)}


def collect(*, python: str, pythonpath: str | None, slime_dir: str | None, megatron_dir: str | None,
            environ: Mapping[str, str]) -> dict:
    packages = job_packages(python, pythonpath)
    python_version = packages.pop("python", None)
    return {
        "runner": runner_source(environ),
        "pins": pins_digest(environ),
        "flake_lock": flake_inputs(environ),
        "from_nix": environ.get("SLIME_RUNNER_ENV") == "nix",
        "store_paths": store_paths({"python": python, "slime": slime_dir, "megatron-lm": megatron_dir,
                                    **{name: environ.get(var) for name, var in STORE_PATH_ENV.items()}}),
        "slime": {"path": slime_dir, **(git_revision(slime_dir) or {})} if slime_dir else None,
        "megatron-lm": {"path": megatron_dir, **(git_revision(megatron_dir) or {})} if megatron_dir else None,
        "python": {"executable": python, "version": python_version},
        "packages": packages,
    }
