"""Helpers for the Nix-level tests: find real Nix and the optional sources.

No conftest.py on purpose (tests/conftest.py belongs to the runner's suite).
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
NIX_DIR = REPO / "nix"
PINS = json.loads((NIX_DIR / "pins.json").read_text())

# Where a snapshot of an upstream repository may be found: the folder of
# pinned tarballs that SLIME_UPSTREAM_SOURCES names (CI sets it, see
# tools/upstream_sources.py), then an env var naming a git dir or a source tree.


def load_tool(name: str, path: Path):
    """Import a script of tools/ (not a package) as a module."""
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


def nix_instantiate() -> str:
    exe = shutil.which("nix-instantiate")
    if exe is None:
        pytest.skip("nix-instantiate not installed (apt-get install nix-bin)")
    return exe


def nix_eval(expr: str, *, strict: bool = True) -> object:
    """Evaluate a Nix expression with real Nix and return it as Python data."""
    args = [nix_instantiate(), "--eval", "--json"]
    if strict:
        args.append("--strict")
    env = dict(os.environ)
    # Nix 2.8 wants a writable state dir even for pure evaluation.
    env.setdefault("NIX_STATE_DIR", str(Path(os.environ.get("TMPDIR", "/tmp")) / "nix-state"))
    out = subprocess.run(
        [*args, "--expr", expr], check=True, capture_output=True, text=True, env=env
    )
    return json.loads(out.stdout)


def upstream_tree(
    name: str, env_var: str, rev: str, dest: Path, mirror: str | None = None
) -> Path:
    """A source tree of an upstream repository at `rev`, or skip.

    First the pinned tarball from SLIME_UPSTREAM_SOURCES (a shared, extracted
    tree: callers that modify it copy it first). Else `env_var` may name a
    source tree (used as is) or a git dir (archived at rev into `dest`).
    `mirror` (OWNER+REPO) names a repository that nix/pins.json does not list.
    """
    src = PINS["sources"].get(name)
    owner_repo = mirror.replace("+", "/", 1) if mirror else (f"{src['owner']}/{src['repo']}" if src else None)
    if owner_repo and rev != "HEAD":
        sources = load_tool("upstream_sources", REPO / "tools" / "upstream_sources.py")
        if sources.find_archive(owner_repo, rev) is not None:
            return sources.tree(owner_repo, rev)
    given = os.environ.get(env_var)
    candidates = [Path(given)] if given else []
    for cand in candidates:
        if not cand.exists():
            continue
        if (cand / "HEAD").exists() or (cand / ".git").exists():
            git_dir = cand / ".git" if (cand / ".git").exists() else cand
            if rev == "HEAD":
                rev = subprocess.run(
                    ["git", "--git-dir", str(git_dir), "rev-parse", "HEAD"],
                    check=True, capture_output=True, text=True,
                ).stdout.strip()  # fmt: skip
            has = subprocess.run(
                ["git", "--git-dir", str(git_dir), "cat-file", "-e", f"{rev}^{{commit}}"],
                capture_output=True,
            )
            if has.returncode != 0:
                continue
            dest.mkdir(parents=True, exist_ok=True)
            archive = subprocess.run(
                ["git", "--git-dir", str(git_dir), "archive", rev],
                check=True,
                capture_output=True,
            )
            subprocess.run(["tar", "-x", "-C", str(dest)], input=archive.stdout, check=True)
            return dest
        return cand
    pytest.skip(
        f"no snapshot of {name} at {rev[:8]} here (set SLIME_UPSTREAM_SOURCES to a folder of pinned tarballs, "
        f"or {env_var} to a clone or tree)"
    )
