"""`convert`: Hugging Face checkpoint -> Megatron torch_dist, with slime's converter.

Runs `torchrun --nproc-per-node N slime/tools/convert_hf_to_torch_dist.py
MODEL_ARGS --hf-checkpoint HF --save OUT` (as the seed doc does). The HF
checkpoint is validated first; the output is written to a temporary sibling
directory and renamed only on success, so an interrupted run leaves no
half-written checkpoint behind. A complete output is skipped (--force redoes
it, moving the old one aside, never deleting it).
"""

from __future__ import annotations

import argparse
import os
import secrets as _secrets
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from runner.checks import inputs
from runner.checks.checkpoint import CheckpointError, torch_dist_complete, validate_hf_checkpoint
from runner.commands.common import add_location_arguments, locations_from_args, print_plan
from runner.gpus import query_gpus
from runner.launch.plan import Plan, Process
from runner.recipes.common import HF_CHECKPOINT, TORCH_DIST_CHECKPOINT
from runner.recipes.qwen3_next import QWEN3_NEXT_80B, megatron_model_flags
from runner.slime_args.render import with_base_folder


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--hf-checkpoint", help="HF checkpoint folder (default $BASE_FOLDER/Qwen3-Next-80B-A3B-Thinking)")
    p.add_argument("--save", help="output folder (default $BASE_FOLDER/Qwen3-Next-80B-A3B-Thinking_torch_dist)")
    p.add_argument("--nproc-per-node", type=int, help="processes (GPUs) for torchrun (default: GPUs on this node)")
    p.add_argument("--master-port", type=int, help="torchrun rendezvous port (default: torchrun's, 29500)")
    p.add_argument("--force", action="store_true", help="convert again even if a complete output exists "
                                                          "(the old output is moved aside, not deleted)")
    add_location_arguments(p)


@dataclass
class ConvertPlan:
    plan: Plan
    hf: Path
    save: Path
    partial: Path
    skip: bool


def convert_argv(torchrun: list[str], nproc: int, master_port: int | None, slime_dir: str, hf: str,
                 save: str) -> list[str]:
    model = [a for f in megatron_model_flags(QWEN3_NEXT_80B) for a in f.argv()]
    port = ["--master-port", str(master_port)] if master_port else []
    return [*torchrun, "--nproc-per-node", str(nproc), *port,
            f"{slime_dir}/tools/convert_hf_to_torch_dist.py", *model, "--hf-checkpoint", hf, "--save", save]


def gather(args, environ=None) -> ConvertPlan:
    environ = os.environ if environ is None else environ
    locs = locations_from_args(args, environ)
    base = str(locs.base)
    hf = Path(os.path.abspath(args.hf_checkpoint or with_base_folder(HF_CHECKPOINT, base)))
    save = Path(os.path.abspath(args.save or with_base_folder(TORCH_DIST_CHECKPOINT, base)))
    partial = save.parent / f".{save.name}.partial-{_secrets.token_hex(3)}"
    plan = Plan(notes=locs.describe()[:3])
    if inputs.base_folder_problem(locs):
        plan.error(inputs.base_folder_problem(locs))
    slime_dir = locs.slime_dir.value
    if not slime_dir:
        plan.error("SLIME_DIR is not set: pass --slime-dir or export SLIME_DIR (the flake's apps set it)")
        slime_dir = "<SLIME_DIR>"
    elif not (Path(slime_dir) / "tools/convert_hf_to_torch_dist.py").is_file():
        plan.error(f"{slime_dir}/tools/convert_hf_to_torch_dist.py not found: SLIME_DIR must be a slime checkout")
    megatron_dir = locs.megatron_dir.value
    if not megatron_dir:
        plan.error("MEGATRON_DIR is not set: pass --megatron-dir or export MEGATRON_DIR (the flake's apps set it)")
        megatron_dir = "<MEGATRON_DIR>"

    skip = False
    if save.exists():
        if torch_dist_complete(save) and not args.force:
            skip = True
            plan.notes.append(f"{save} is already a complete torch_dist checkpoint: nothing to do (--force redoes it)")
        elif not torch_dist_complete(save) and not args.force:
            plan.error(f"output {save} exists but is not a complete torch_dist checkpoint; move it away or pass "
                       f"--force (it will be moved aside to {save.name}.replaced-<time>, not deleted)")
    try:
        summary = validate_hf_checkpoint(hf)
        plan.notes.append(f"HF checkpoint {hf}: {len(summary.shards)} shard(s), {summary.tensors} tensors, "
                          f"{summary.total_bytes / 1e9:.1f} GB")
        free = shutil.disk_usage(_existing_parent(save)).free
        if free < summary.total_bytes * 1.05:
            plan.error(f"{_existing_parent(save)} has {free / 1e9:.0f} GB free; the torch_dist output needs about "
                       f"{summary.total_bytes / 1e9:.0f} GB")
    except CheckpointError as exc:
        plan.error(str(exc))

    nproc = args.nproc_per_node
    if nproc is None:
        facts = query_gpus(environ)
        nproc = facts.count
        if nproc == 0:
            plan.error(f"no GPUs found ({facts.error or facts.source}); the converter needs CUDA GPUs "
                       f"(or pass --nproc-per-node)")
            nproc = 1
        else:
            plan.notes.append(f"--nproc-per-node {nproc}: the GPUs on this node ({facts.source})")
    if not 1 <= nproc <= QWEN3_NEXT_80B.num_hidden_layers:
        plan.error(f"--nproc-per-node {nproc} must be between 1 and {QWEN3_NEXT_80B.num_hidden_layers} "
                   f"(slime's converter pipelines the {QWEN3_NEXT_80B.num_hidden_layers} layers over the processes)")

    torchrun = [shutil.which("torchrun") or "torchrun"]
    argv = convert_argv(torchrun, nproc, args.master_port, slime_dir, str(hf), str(partial))
    if not skip:
        plan.processes.append(Process(tuple(argv), {"PYTHONPATH": f"{megatron_dir}:{slime_dir}"}, cwd=slime_dir,
                                      purpose=f"convert {hf.name} to torch_dist in {partial.name}, then rename "
                                              f"to {save}"))
    return ConvertPlan(plan, hf, save, partial, skip)


def _existing_parent(path: Path) -> Path:
    for p in (path, *path.parents):
        if p.exists():
            return p
    return Path("/")


def run(args) -> int:
    cp = gather(args)
    if args.dry_run:
        return print_plan(cp.plan, args, [])
    if cp.plan.errors:
        return print_plan(cp.plan, args, [], problems_only=True)
    for note in cp.plan.notes:
        print(f"[runner] {note}", file=sys.stderr)
    if cp.skip:
        return 0
    proc = cp.plan.processes[0]
    cp.save.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, **proc.env}
    print(f"[runner] $ {' '.join(proc.argv[:6])} ... --save {cp.partial}", file=sys.stderr, flush=True)
    try:
        rc = subprocess.run(list(proc.argv), env=env, cwd=proc.cwd).returncode
    except KeyboardInterrupt:
        rc = 130
    if rc != 0 or not torch_dist_complete(cp.partial):
        shutil.rmtree(cp.partial, ignore_errors=True)
        reason = f"exit code {rc}" if rc != 0 else "no latest_checkpointed_iteration.txt written"
        print(f"error: conversion failed ({reason}); the partial output was removed, {cp.save} is untouched",
              file=sys.stderr)
        return rc or 1
    if cp.save.exists():
        aside = cp.save.with_name(f"{cp.save.name}.replaced-{time.strftime('%Y%m%d-%H%M%S')}")
        cp.save.rename(aside)
        print(f"[runner] moved the previous output aside to {aside}", file=sys.stderr)
    cp.partial.rename(cp.save)
    print(f"[runner] converted: {cp.save}", file=sys.stderr)
    return 0
