"""`download`: the model and the datasets into BASE_FOLDER, resumable, with progress.

Uses huggingface_hub's snapshot_download (it resumes partial files and shows
progress bars). HF_TOKEN is read from the environment only. Without network
it fails with one message that says what to place where.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from dataclasses import dataclass

from runner.checks import inputs
from runner.commands.common import add_location_arguments, locations_from_args, print_plan
from runner.interpreter import own_python
from runner.launch.plan import Plan, Process
from runner.recipes.qwen3_next import DEFAULT_HF_REPO, MODEL_DIR_NAME

DATASETS = ("zhuzilin/dapo-math-17k", "zhuzilin/aime-2024")


@dataclass(frozen=True)
class Fetch:
    repo: str
    repo_type: str  # "model" or "dataset"
    local_dir: str
    expect: str  # a file that must exist afterwards


def fetches(base: str, model: str, revision: str | None, datasets: tuple[str, ...], skip_model: bool) -> list[Fetch]:
    out = []
    if not skip_model:
        name = MODEL_DIR_NAME if model == DEFAULT_HF_REPO else model.split("/")[-1]
        out.append(Fetch(model, "model", os.path.join(base, name), "config.json"))
    for repo in datasets:
        name = repo.split("/")[-1]
        out.append(Fetch(repo, "dataset", os.path.join(base, name), f"{name}.jsonl"))
    return out


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default=DEFAULT_HF_REPO, help="model repo (default %(default)s)")
    p.add_argument("--revision", help="model revision (branch, tag or commit); default: the repo's main")
    p.add_argument("--skip-model", action="store_true", help="only the datasets")
    p.add_argument("--skip-datasets", action="store_true", help="only the model")
    add_location_arguments(p)


def gather(args, environ=None) -> tuple[Plan, list[Fetch]]:
    environ = os.environ if environ is None else environ
    locs = locations_from_args(args, environ)
    items = fetches(str(locs.base), args.model, args.revision, () if args.skip_datasets else DATASETS,
                    args.skip_model)
    plan = Plan(notes=[f"BASE_FOLDER = {locs.base_folder}",
                       "HF_TOKEN: " + ("set (from the environment)" if environ.get("HF_TOKEN") else "not set")])
    if args.skip_model and args.skip_datasets:
        plan.error("--skip-model and --skip-datasets together leave nothing to download; drop one of them")
    base_problem = inputs.base_folder_problem(locs)
    if base_problem:
        plan.error(base_problem)
    for f in items:
        argv = [*own_python(), "-m", "runner.commands.hf_fetch", "--repo", f.repo, "--repo-type", f.repo_type,
                "--local-dir", f.local_dir, "--expect", f.expect]
        if f.repo_type == "model" and args.revision:
            argv += ["--revision", args.revision]
        plan.processes.append(Process(tuple(argv), purpose=f"download {f.repo_type} {f.repo} into {f.local_dir}"))
    return plan, items


def remaining_bytes(item: Fetch, sizes: dict[str, int]) -> tuple[int, int]:
    """(bytes still to fetch, files still to fetch): files absent or of another size count whole
    (huggingface_hub keeps partial downloads aside and resumes them, so this errs on the safe side)."""
    todo = [(name, size) for name, size in sizes.items()
            if not (os.path.isfile(os.path.join(item.local_dir, name))
                    and os.path.getsize(os.path.join(item.local_dir, name)) == size)]
    return sum(size for _, size in todo), len(todo)


def _existing_parent(path: str) -> str:
    while not os.path.exists(path) and os.path.dirname(path) != path:
        path = os.path.dirname(path)
    return path


def run(args) -> int:
    plan, items = gather(args)
    if args.dry_run:
        return print_plan(plan, args, [])
    if plan.errors:
        return print_plan(plan, args, [], problems_only=True)
    from runner.commands.hf_fetch import offline_message, remote_sizes

    # Sizes first (metadata only): refuse before writing anything when the disk cannot hold them.
    needed, todo = 0, []
    for item, proc in zip(items, plan.processes):
        try:
            sizes = remote_sizes(item.repo, item.repo_type, args.revision if item.repo_type == "model" else None)
        except ImportError:
            print("error: huggingface_hub is not installed: pip install huggingface_hub (the flake's env has it)",
                  file=sys.stderr)
            return 2
        except Exception as exc:  # network errors come in many classes across hub versions
            print(f"error: {offline_message(item.repo, item.repo_type, item.local_dir, item.expect, exc)}",
                  file=sys.stderr)
            return 1
        missing, files = remaining_bytes(item, sizes)
        if files:
            needed += missing
            todo.append(proc)
            print(f"[runner] {item.repo}: {files} file(s), {missing / 1e9:.1f} GB to fetch", file=sys.stderr)
        else:
            print(f"[runner] {item.repo}: already complete in {item.local_dir}", file=sys.stderr)
    if not todo:
        print("[runner] nothing to download: every file is already in BASE_FOLDER", file=sys.stderr)
        return 0
    where = _existing_parent(os.path.dirname(items[0].local_dir))
    free = shutil.disk_usage(where).free
    if needed > free:
        print(f"error: the download needs {needed / 1e9:.1f} GB but {where} has {free / 1e9:.1f} GB free; free "
              f"space there or point --base-folder (BASE_FOLDER) at a bigger disk", file=sys.stderr)
        return 2
    import subprocess

    for proc in todo:
        print(f"[runner] {proc.purpose}", file=sys.stderr, flush=True)
        rc = subprocess.run(list(proc.argv)).returncode
        if rc != 0:
            return rc
    print("[runner] all downloads complete", file=sys.stderr)
    return 0
