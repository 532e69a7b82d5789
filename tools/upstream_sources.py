#!/usr/bin/env python3
"""Pinned upstream source trees from a folder of `git archive` tarballs.

Tests and tools that must run the REAL upstream code (uv2nix's overlays,
slime's argument parser and resume logic, the patches applying) read it from
one folder named by SLIME_UPSTREAM_SOURCES. The folder holds one tarball per
repository and revision, named `OWNER+REPO-REV.tar.gz` (REV: the full 40-hex
commit), each made with `git archive --format=tar.gz REV`. `.ci/run` sets the
variable when the CI machine has such a folder; on a developer machine, point
it at any folder of that layout.

Trees are extracted once into $XDG_CACHE_HOME/slime-qwen3-next/upstream
(SLIME_UPSTREAM_CACHE moves it), each under its archive's name, marked complete
only after the extraction finished, so a killed extraction is redone.

    python3 tools/upstream_sources.py tree OWNER/REPO REV     # prints the tree's path
    python3 tools/upstream_sources.py list                    # what the folder holds
"""

from __future__ import annotations

import os
import shutil
import sys
import tarfile
import tempfile
from pathlib import Path

VARIABLE = "SLIME_UPSTREAM_SOURCES"
CACHE_VARIABLE = "SLIME_UPSTREAM_CACHE"


class SourceMissing(LookupError):
    """No tarball of that repository at that revision: the message says what to set."""


def sources_dir() -> Path | None:
    """The folder SLIME_UPSTREAM_SOURCES names, or None when unset or absent."""
    given = os.environ.get(VARIABLE)
    if not given:
        return None
    path = Path(given)
    return path if path.is_dir() else None


def archive_name(owner_repo: str, rev: str) -> str:
    owner, repo = owner_repo.split("/", 1)
    return f"{owner}+{repo}-{rev}.tar.gz"


def find_archive(owner_repo: str, rev: str) -> Path | None:
    folder = sources_dir()
    if folder is None:
        return None
    path = folder / archive_name(owner_repo, rev)
    return path if path.is_file() else None


def cache_root() -> Path:
    if os.environ.get(CACHE_VARIABLE):
        return Path(os.environ[CACHE_VARIABLE])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "slime-qwen3-next" / "upstream"


def tree(owner_repo: str, rev: str) -> Path:
    """The source tree of OWNER/REPO at REV (extracted once, then reused).

    The tree is shared: callers that modify it (apply a patch) copy it first.
    """
    archive = find_archive(owner_repo, rev)
    if archive is None:
        where = os.environ.get(VARIABLE)
        state = f"{VARIABLE}={where} has no {archive_name(owner_repo, rev)}" if where else f"{VARIABLE} is not set"
        raise SourceMissing(
            f"no source of {owner_repo} at {rev[:12]}: {state} (a folder of `git archive` tarballs named "
            "OWNER+REPO-REV.tar.gz; see tools/upstream_sources.py)"
        )
    dest = cache_root() / archive.name[: -len(".tar.gz")]
    if (dest / ".complete").exists():
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=dest.name + ".", dir=dest.parent))
    try:
        with tarfile.open(archive) as tar:
            tar.extractall(tmp, filter="tar") if hasattr(tarfile, "data_filter") else tar.extractall(tmp)
        (tmp / ".complete").write_text(rev + "\n")
        try:
            tmp.rename(dest)
        except OSError:
            # Another process finished the same extraction first: keep its tree.
            if not (dest / ".complete").exists():
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return dest


def copy_of(owner_repo: str, rev: str, dest: Path) -> Path:
    """A private, writable copy of the tree at `dest` (for patching)."""
    shutil.copytree(tree(owner_repo, rev), dest, symlinks=True, ignore=shutil.ignore_patterns(".complete"))
    return dest


def _main(argv: list[str]) -> int:
    if argv[:1] == ["tree"] and len(argv) == 3:
        try:
            print(tree(argv[1], argv[2]))
        except SourceMissing as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        return 0
    if argv == ["list"]:
        folder = sources_dir()
        if folder is None:
            print(f"error: {VARIABLE} is not set to a folder", file=sys.stderr)
            return 2
        for path in sorted(folder.glob("*.tar.gz")):
            print(path.name)
        return 0
    print("usage: upstream_sources.py tree OWNER/REPO REV | list", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
