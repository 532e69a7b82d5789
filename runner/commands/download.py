"""`download`: the model and the datasets into BASE_FOLDER, resumable, with progress.

Uses huggingface_hub's snapshot_download (it resumes partial files and shows
progress bars). HF_TOKEN is read from the environment only. Without network
it fails with one message that says what to place where.
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass

from runner.commands.common import add_location_arguments, locations_from_args, print_plan
from runner.plan import Plan, Process
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
    for f in items:
        argv = [sys.executable, "-m", "runner.hf_fetch", "--repo", f.repo, "--repo-type", f.repo_type,
                "--local-dir", f.local_dir, "--expect", f.expect]
        if f.repo_type == "model" and args.revision:
            argv += ["--revision", args.revision]
        plan.processes.append(Process(tuple(argv), purpose=f"download {f.repo_type} {f.repo} into {f.local_dir}"))
    return plan, items


def run(args) -> int:
    plan, _ = gather(args)
    if args.dry_run:
        return print_plan(plan, args, [])
    import subprocess

    for proc in plan.processes:
        print(f"[runner] {proc.purpose}", file=sys.stderr, flush=True)
        rc = subprocess.run(list(proc.argv)).returncode
        if rc != 0:
            return rc
    print("[runner] all downloads complete", file=sys.stderr)
    return 0
