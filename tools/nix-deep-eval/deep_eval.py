#!/usr/bin/env python3
"""Deep evaluation of the flake with the real uv2nix family.

Evaluates deep-eval.nix (next to this file) with real Nix: flake.lock's
inputs wired as Nix wires them, the REAL pyproject.nix, uv2nix and
build-system-pkgs at flake.lock's revisions, the real nixpkgs lib, and the
stand-in nixpkgs of ./nixpkgs. Prints the forced result as JSON (or writes it
with --out). Exit 0 when everything evaluated, 1 when evaluation failed (the
error is printed), 2 when the sources or Nix are missing.

Where the sources come from, in order, for each of pyproject-nix, uv2nix,
pyproject-build-systems and the nixpkgs lib:
  0. SLIME_UPSTREAM_SOURCES: a folder of `git archive` tarballs named
     OWNER+REPO-REV.tar.gz (tools/upstream_sources.py; CI sets it);
  1. SLIME_NIX_<NAME>_SRC (a source tree, or a git dir/clone archived at the
     revision): SLIME_NIX_PYPROJECT_NIX_SRC, SLIME_NIX_UV2NIX_SRC,
     SLIME_NIX_BUILD_SYSTEM_PKGS_SRC, SLIME_NIX_NIXPKGS_LIB_SRC;
  2. SLIME_NIX_SOURCES: a directory with one git dir or clone per repository,
     named OWNER+REPO (or OWNER+REPO/repo).
Extractions are cached under $XDG_CACHE_HOME/slime-nix-deep-eval.

    python3 tools/nix-deep-eval/deep_eval.py [--system x86_64-linux] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(REPO / "tools"))
import upstream_sources  # noqa: E402  (tools/ is not a package)

# nixpkgs lib: the nix-community/nixpkgs.lib mirror has no nixos-25.11
# branch. This is its copy of nixpkgs master's lib/ right before master was
# bumped to 26.05 ("26.05 is Yarara", 2025-11-24), i.e. the lib that
# release-25.11 branched with (lib/.version 25.11). release-25.11 only takes
# backports after that (docs/nix.md).
NIXPKGS_LIB_REV = "d7885204d4be98b3718bad1a47b80c2058d696aa"


@dataclass(frozen=True)
class Source:
    node: str  # flake.lock node ("nixpkgs-lib" for the lib)
    env_var: str
    mirror_name: str  # OWNER+REPO
    rev: str


class SourcesMissing(Exception):
    """A source tree cannot be found here; the message says which and how to provide it."""


def flake_lock() -> dict:
    return json.loads((REPO / "flake.lock").read_text())


def wanted_sources() -> list[Source]:
    nodes = flake_lock()["nodes"]
    rev = lambda node: nodes[node]["locked"]["rev"]  # noqa: E731
    return [
        Source("pyproject-nix", "SLIME_NIX_PYPROJECT_NIX_SRC", "pyproject-nix+pyproject.nix", rev("pyproject-nix")),
        Source("uv2nix", "SLIME_NIX_UV2NIX_SRC", "pyproject-nix+uv2nix", rev("uv2nix")),
        Source(
            "pyproject-build-systems",
            "SLIME_NIX_BUILD_SYSTEM_PKGS_SRC",
            "pyproject-nix+build-system-pkgs",
            rev("pyproject-build-systems"),
        ),
        Source("nixpkgs-lib", "SLIME_NIX_NIXPKGS_LIB_SRC", "nix-community+nixpkgs.lib", NIXPKGS_LIB_REV),
    ]


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "slime-nix-deep-eval"


def _git_dir(path: Path) -> Path | None:
    if (path / ".git").exists():
        return path / ".git"
    if (path / "HEAD").is_file() and (path / "objects").is_dir():
        return path
    return None


def _has_commit(git_dir: Path, rev: str) -> bool:
    res = subprocess.run(
        ["git", "--git-dir", str(git_dir), "cat-file", "-e", f"{rev}^{{commit}}"], capture_output=True
    )
    return res.returncode == 0


def _extract(git_dir: Path, rev: str, dest: Path) -> Path:
    if (dest / ".complete").exists():
        return dest
    if dest.exists():
        shutil.rmtree(dest)
    tmp = Path(tempfile.mkdtemp(prefix=dest.name + ".", dir=dest.parent))
    archive = subprocess.run(
        ["git", "--git-dir", str(git_dir), "archive", rev], check=True, capture_output=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(tmp)], input=archive, check=True)
    (tmp / ".complete").write_text(rev + "\n")
    tmp.rename(dest)
    return dest


def locate(src: Source) -> Path:
    """A source tree of `src` at its revision, extracting from git if needed."""
    owner_repo = src.mirror_name.replace("+", "/", 1)
    if upstream_sources.find_archive(owner_repo, src.rev) is not None:
        return upstream_sources.tree(owner_repo, src.rev)
    candidates: list[Path] = []
    if os.environ.get(src.env_var):
        candidates.append(Path(os.environ[src.env_var]))
    if os.environ.get("SLIME_NIX_SOURCES"):
        base = Path(os.environ["SLIME_NIX_SOURCES"]) / src.mirror_name
        candidates += [base / "repo", base]
    for cand in candidates:
        if not cand.exists():
            continue
        git_dir = _git_dir(cand)
        if git_dir is None:
            # A plain source tree: trusted to be at the revision (its name
            # says so when it came from this script's cache).
            return cand
        if _has_commit(git_dir, src.rev):
            dest = cache_dir() / f"{src.node}-{src.rev[:12]}"
            dest.parent.mkdir(parents=True, exist_ok=True)
            return _extract(git_dir, src.rev, dest)
    raise SourcesMissing(
        f"no source of {src.mirror_name} at {src.rev[:12]} here "
        f"(set SLIME_UPSTREAM_SOURCES to a folder of pinned tarballs, {src.env_var} to a clone or source tree, "
        "or SLIME_NIX_SOURCES to a directory of clones)"
    )


def stand_in(nixpkgs_lib: Path, work: Path) -> Path:
    """The stand-in nixpkgs with the real lib beside it, as nixpkgs has it."""
    dest = work / "nixpkgs"
    shutil.copytree(HERE / "nixpkgs", dest)
    (dest / "lib").symlink_to(nixpkgs_lib / "lib")
    return dest


def nix_instantiate() -> str:
    exe = shutil.which("nix-instantiate")
    if exe is None:
        raise SourcesMissing("nix-instantiate not installed (apt-get install nix-bin)")
    return exe


def _nix_path(p: Path) -> str:
    return f'(/. + "/{str(p).lstrip("/")}")'


def self_info(repo: Path) -> dict[str, str]:
    """What Nix (>= 2.17) puts on `self` for a flake in this tree: rev and
    shortRev when it is a git checkout without uncommitted changes to tracked
    files, dirtyRev and dirtyShortRev ("<rev>-dirty") when it has some,
    nothing when it is no git checkout (a path: flake)."""
    def git(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True)

    if not (repo / ".git").exists():
        return {}
    head = git("rev-parse", "HEAD")
    if head.returncode != 0:
        return {}
    rev = head.stdout.strip()
    if git("status", "--porcelain", "--untracked-files=no").stdout.strip():
        return {"dirtyRev": f"{rev}-dirty", "dirtyShortRev": f"{rev[:7]}-dirty"}
    return {"rev": rev, "shortRev": rev[:7]}


def expression(sources: dict[str, Path], system: str, repo: Path = REPO, info: dict[str, str] | None = None) -> str:
    nodes = " ".join(f'"{k}" = {_nix_path(v)};' for k, v in sources.items())
    selfinfo = " ".join(f"{k} = {json.dumps(v)};" for k, v in (self_info(repo) if info is None else info).items())
    return (
        f"import {_nix_path(HERE / 'deep-eval.nix')} {{ repo = {_nix_path(repo)}; "
        f'sources = {{ {nodes} }}; system = "{system}"; selfInfo = {{ {selfinfo} }}; }}'
    )


@dataclass
class Result:
    ok: bool
    data: dict | None
    error: str


def evaluate(system: str = "x86_64-linux", repo: Path = REPO, show_trace: bool = False,
             info: dict[str, str] | None = None, store: Path | None = None) -> Result:
    """Run the deep evaluation; raises SourcesMissing when it cannot run here.
    `info`: the flake's own revision attributes (default: self_info(repo)).
    `store`: also write what the evaluation instantiates (the .drv files and
    the sources copied into the store, e.g. a check's lib.fileset source)
    into a Nix store rooted there (`--store local?root=STORE`); without it
    nothing is written."""
    exe = nix_instantiate()
    trees = {s.node: locate(s) for s in wanted_sources()}
    with tempfile.TemporaryDirectory(prefix="deep-eval.") as work:
        work_path = Path(work)
        sources = {
            "nixpkgs": stand_in(trees.pop("nixpkgs-lib"), work_path),
            **trees,
            "root": repo,
        }
        env = dict(os.environ)
        # Nix 2.8 wants a writable state dir even for evaluation.
        env.setdefault("NIX_STATE_DIR", str(work_path / "nix-state"))
        args = [exe, "--eval", "--strict", "--json", "--expr", expression(sources, system, repo, info)]
        if store is not None:
            args[1:1] = ["--read-write-mode", "--store", f"local?root={store}"]
        if show_trace:
            args.insert(1, "--show-trace")
        res = subprocess.run(args, capture_output=True, text=True, env=env)
    if res.returncode != 0:
        return Result(False, None, res.stderr.strip())
    return Result(True, json.loads(res.stdout), res.stderr.strip())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--system", default="x86_64-linux", choices=["x86_64-linux", "aarch64-linux"])
    ap.add_argument("--out", type=Path, help="write the JSON result here instead of stdout")
    ap.add_argument("--show-trace", action="store_true")
    args = ap.parse_args(argv)
    try:
        res = evaluate(args.system, show_trace=args.show_trace)
    except SourcesMissing as exc:
        print(f"deep-eval: {exc}", file=sys.stderr)
        return 2
    if not res.ok:
        print(res.error, file=sys.stderr)
        print(f"deep-eval: evaluation of the flake for {args.system} FAILED", file=sys.stderr)
        return 1
    text = json.dumps(res.data, indent=1, sort_keys=True)
    if args.out:
        args.out.write_text(text + "\n")
    else:
        print(text)
    d = res.data
    print(
        f"deep-eval: {args.system} ok: {len(d['python'])} Python packages"
        + (f" (and {len(d['unavailable'])} refused here: {', '.join(sorted(d['unavailable']))})" if d["unavailable"] else "")
        + f", {len(d['packages'])} packages, "
        f"{len(d['apps'])} apps, {len(d['devShells'])} devShells, {len(d['checks'])} checks",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
