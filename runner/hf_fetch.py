"""Download one Hugging Face repo into a folder (a process of `runner download`)."""

from __future__ import annotations

import argparse
import os
import sys


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m runner.hf_fetch")
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
        kind = type(exc).__name__
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else kind
        print(f"error: cannot download {what} ({kind}: {first[:200]}); without network, copy it from a machine "
              f"that has it: `hf download {'--repo-type dataset ' if args.repo_type == 'dataset' else ''}"
              f"{args.repo} --local-dir DIR` there, then place DIR at {args.local_dir} "
              f"(it must contain {args.expect})", file=sys.stderr)
        return 1
    if not os.path.exists(os.path.join(args.local_dir, args.expect)):
        print(f"error: {what} downloaded, but {args.local_dir}/{args.expect} is missing: is this the right repo?",
              file=sys.stderr)
        return 1
    print(f"[runner] {what} is in {args.local_dir}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
