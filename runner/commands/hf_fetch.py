"""Download one Hugging Face repo into a folder (a process of `runner download`)."""

from __future__ import annotations

import argparse
import os
import sys


def offline_message(repo: str, repo_type: str, local_dir: str, expect: str, exc: Exception) -> str:
    kind = type(exc).__name__
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else kind
    return (f"cannot download {repo_type} {repo} ({kind}: {first[:200]}); without network, copy it from a machine "
            f"that has it: `hf download {'--repo-type dataset ' if repo_type == 'dataset' else ''}"
            f"{repo} --local-dir DIR` there, then place DIR at {local_dir} (it must contain {expect})")


def remote_sizes(repo: str, repo_type: str, revision: str | None) -> dict[str, int]:
    """Every file of the repo and its size in bytes, from the hub's metadata (no download)."""
    from huggingface_hub import HfApi

    info = HfApi().repo_info(repo, repo_type=repo_type, revision=revision, files_metadata=True,
                             token=os.environ.get("HF_TOKEN") or None)
    return {s.rfilename: int(s.size or 0) for s in (info.siblings or [])}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m runner.commands.hf_fetch")
    p.add_argument("--repo", required=True)
    p.add_argument("--repo-type", choices=("model", "dataset"), required=True)
    p.add_argument("--local-dir", required=True)
    p.add_argument("--expect", required=True, help="a file that must exist afterwards")
    p.add_argument("--revision")
    args = p.parse_args(argv)
    try:
        from huggingface_hub import snapshot_download
    except ImportError:
        print("error: huggingface_hub is not installed: pip install huggingface_hub (the flake's env has it)",
              file=sys.stderr)
        return 2
    what = f"{args.repo_type} {args.repo}"
    try:
        # Resumable: files already complete are skipped, partial ones continue.
        snapshot_download(repo_id=args.repo, repo_type=args.repo_type, local_dir=args.local_dir,
                          revision=args.revision, token=os.environ.get("HF_TOKEN") or None)
    except KeyboardInterrupt:
        print(f"\ninterrupted: run the same command again to resume {what}", file=sys.stderr)
        return 130
    except Exception as exc:  # network errors come in many classes across hub versions
        print(f"error: {offline_message(args.repo, args.repo_type, args.local_dir, args.expect, exc)}",
              file=sys.stderr)
        return 1
    if not os.path.exists(os.path.join(args.local_dir, args.expect)):
        print(f"error: {what} downloaded, but {args.local_dir}/{args.expect} is missing: is this the right repo?",
              file=sys.stderr)
        return 1
    print(f"[runner] {what} is in {args.local_dir}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
