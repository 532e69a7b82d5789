#!/usr/bin/env python3
"""PyPI files by sha256, downloaded whole and cached in one place.

The build-layer audits (tools/nix-build-audit) stand in for the flake's Python
packages with the very files uv.lock pins (or, for the CUDA toolkit parts that
no lock lists, the audit's own table of hashes). Each file is downloaded once,
its sha256 checked against the expected one before it is kept, and stored
under the cache root that SLIME_WHEEL_CACHE names (default
$XDG_CACHE_HOME/slime-qwen3-next/wheels):

    <root>/files/<sha256>/<file name>    the downloaded files (a few GB)
    <root>/uv/                           uv's cache (unpacked wheels, hard-linked into envs)
    <root>/envs/<key>/                   environments built from them, reused while the key matches

A file is moved into place only after its hash matched, so a cached file is
always the pinned one.

    python3 tools/wheel_cache.py fetch URL SHA256     # prints the cached path
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path

VARIABLE = "SLIME_WHEEL_CACHE"


class HashMismatch(Exception):
    """A downloaded file is not the pinned one."""


def cache_root() -> Path:
    if os.environ.get(VARIABLE):
        return Path(os.environ[VARIABLE])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "slime-qwen3-next" / "wheels"


def fetch(url: str, sha256: str, root: Path | None = None) -> Path:
    """The file at URL with this sha256 (hex), from the cache or downloaded."""
    root = root or cache_root()
    dest = root / "files" / sha256 / url.rsplit("/", 1)[1]
    if dest.is_file():
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=dest.name + ".", dir=dest.parent)
    try:
        digest = hashlib.sha256()
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url) as resp:
            while chunk := resp.read(1 << 20):
                digest.update(chunk)
                out.write(chunk)
        if digest.hexdigest() != sha256:
            raise HashMismatch(f"{url}: sha256 {digest.hexdigest()}, expected {sha256}")
        os.replace(tmp, dest)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return dest


def uv() -> str:
    exe = shutil.which("uv")
    if exe is None:
        raise FileNotFoundError("uv not installed (python3 -m pip install uv)")
    return exe


def _uv_env(root: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["UV_CACHE_DIR"] = str(root / "uv")
    env["UV_PYTHON_DOWNLOADS"] = "never"
    # Not the checkout's [tool.uv] (its overrides would apply to these installs).
    env["UV_NO_CONFIG"] = "1"
    env.pop("VIRTUAL_ENV", None)
    return env


def install(wheels: list[Path], *, venv: Path | None = None, target: Path | None = None,
            python: str = sys.executable, root: Path | None = None) -> None:
    """Install these wheel files, nothing else (no index, no dependencies):
    into a new virtual environment VENV, or into the directory TARGET."""
    root = root or cache_root()
    args = [uv(), "pip", "install", "--offline", "--no-index", "--no-deps", "--link-mode=hardlink", "--quiet"]
    if venv is not None:
        subprocess.run([uv(), "venv", "--quiet", "--python", python, str(venv)], check=True, env=_uv_env(root))
        args += ["--python", str(venv / "bin" / "python")]
    elif target is not None:
        args += ["--python", python, "--target", str(target)]
    else:
        raise ValueError("install: venv or target")
    subprocess.run(args + [str(w) for w in wheels], check=True, env=_uv_env(root))


def _main(argv: list[str]) -> int:
    if len(argv) == 3 and argv[0] == "fetch":
        print(fetch(argv[1], argv[2]))
        return 0
    print("usage: wheel_cache.py fetch URL SHA256", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
