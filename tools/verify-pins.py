#!/usr/bin/env python3
"""Re-verify every pinned hash of this repo against upstream (maintainers).

Sources are nix/pins.json (git-pinned packages) and flake.lock (flake inputs).
Each hash is recomputed the way fetchFromGitHub / a github flake input
computes it: the NAR hash of the tree at the revision.

Two ways to get the trees:
  --clones DIR   local clones, DIR/<owner>+<repo> or DIR/<repo> (a work tree or
                 a bare git dir): `git archive REV | tar -x`, then
                 `nix hash path --type sha256` (no network).
  (default)      `nix flake prefetch --json github:OWNER/REPO/REV` (network,
                 Nix >= 2.8 with flakes).

Exit status 0 when every hash matches, 1 otherwise; a source whose tree could
not be obtained is reported as SKIP and fails with --strict.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
NIX = ["nix", "--extra-experimental-features", "nix-command flakes"]


def targets() -> list[dict]:
    pins = json.loads((REPO / "nix" / "pins.json").read_text())
    out = []
    for name, s in pins["sources"].items():
        out.append(
            dict(name=name, owner=s["owner"], repo=s["repo"], rev=s["rev"], hash=s["hash"],
                 remove=s.get("remove_after_fetch", []))
        )  # fmt: skip
    lock = json.loads((REPO / "flake.lock").read_text())
    for name, node in lock["nodes"].items():
        locked = node.get("locked")
        if locked and locked.get("type") == "github":
            out.append(
                dict(name=f"flake input {name}", owner=locked["owner"], repo=locked["repo"],
                     rev=locked["rev"], hash=locked["narHash"], remove=[])
            )  # fmt: skip
    return out


def find_clone(clones: Path, owner: str, repo: str) -> Path | None:
    for cand in (clones / f"{owner}+{repo}", clones / f"{owner}+{repo}" / "repo", clones / repo):
        if (cand / ".git").exists():
            return cand / ".git"
        if (cand / "HEAD").exists():
            return cand
    return None


def hash_from_clone(git_dir: Path, t: dict) -> str:
    with tempfile.TemporaryDirectory() as tmp:
        tree = Path(tmp) / "src"
        tree.mkdir()
        files = subprocess.run(
            ["git", "--git-dir", str(git_dir), "ls-tree", "-r", "-z", "--name-only", t["rev"]],
            check=True, capture_output=True,
        ).stdout.split(b"\0")  # fmt: skip
        # Files the pin removes after fetching (mbridge's PDF) are left out
        # before archiving, so a clone that lacks their blobs still works.
        keep = [f.decode() for f in files if f and f.decode() not in t["remove"]]
        archive = subprocess.run(
            ["git", "--git-dir", str(git_dir), "archive", t["rev"], "--", *keep],
            check=True, capture_output=True,
        ).stdout  # fmt: skip
        subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True)
        return subprocess.run(
            [*NIX, "hash", "path", "--type", "sha256", str(tree)],
            check=True, capture_output=True, text=True,
        ).stdout.strip()  # fmt: skip


def hash_from_network(t: dict) -> str:
    if t["remove"]:
        # The pinned hash is of the tree after postFetch; prefetch the store
        # path, then hash a copy without the removed files.
        info = json.loads(
            subprocess.run(
                [*NIX, "flake", "prefetch", "--json", f"github:{t['owner']}/{t['repo']}/{t['rev']}"],
                check=True, capture_output=True, text=True,
            ).stdout
        )  # fmt: skip
        with tempfile.TemporaryDirectory() as tmp:
            tree = Path(tmp) / "src"
            subprocess.run(["cp", "-r", info["storePath"], str(tree)], check=True)
            subprocess.run(["chmod", "-R", "u+w", str(tree)], check=True)
            for f in t["remove"]:
                (tree / f).unlink(missing_ok=True)
            return subprocess.run(
                [*NIX, "hash", "path", "--type", "sha256", str(tree)],
                check=True, capture_output=True, text=True,
            ).stdout.strip()  # fmt: skip
    info = json.loads(
        subprocess.run(
            [*NIX, "flake", "prefetch", "--json", f"github:{t['owner']}/{t['repo']}/{t['rev']}"],
            check=True, capture_output=True, text=True,
        ).stdout
    )  # fmt: skip
    return info["hash"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clones", type=Path, help="directory of local clones (no network)")
    ap.add_argument("--strict", action="store_true", help="a SKIP is a failure")
    args = ap.parse_args()
    failed = skipped = 0
    for t in targets():
        label = f"{t['name']:<34} {t['owner']}/{t['repo']}@{t['rev'][:12]}"
        try:
            if args.clones:
                git_dir = find_clone(args.clones, t["owner"], t["repo"])
                if git_dir is None:
                    print(f"SKIP {label}: no clone under {args.clones}")
                    skipped += 1
                    continue
                got = hash_from_clone(git_dir, t)
            else:
                got = hash_from_network(t)
        except subprocess.CalledProcessError as e:
            err = (e.stderr or b"")
            err = err.decode() if isinstance(err, bytes) else err
            print(f"SKIP {label}: {err.strip().splitlines()[-1] if err.strip() else e}")
            skipped += 1
            continue
        ok = got == t["hash"]
        failed += not ok
        print(f"{'OK  ' if ok else 'FAIL'} {label} {got}" + ("" if ok else f" (pinned {t['hash']})"))
    print(f"{failed} failed, {skipped} skipped")
    return 1 if failed or (args.strict and skipped) else 0


if __name__ == "__main__":
    sys.exit(main())
