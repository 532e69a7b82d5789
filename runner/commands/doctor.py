"""`doctor`: is this machine ready for a recipe? What is missing?

Checks GPUs (count, model, compute capability, memory, NVLink), the driver
library, Python packages against nix/pins.json, fla (its Blackwell patch, and
on GPU machines that its device detection says cuda) and causal-conv1d,
slime's patch in MEGATRON_DIR, disk space, checkpoints and data, the runs dir
(can train create a run there?), the recipe's
topology and memory plan. Exit 1 when something blocks the recipe. `--gpu` also runs
the kernels (fla, causal-conv1d) against float32 references on the GPU.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from runner.checks import inputs, preflight
from runner.checks.checkpoint import CheckpointError, torch_dist_complete, validate_hf_checkpoint
from runner.checks.rows import FAIL, OK, SKIP, WARN, Check, render_table
from runner.checks.stack import (
    disk_check,
    fla_device_check,
    fla_patch_check,
    import_checks,
    libcuda_check,
    megatron_patch_check,
    package_checks,
    slime_resume_check,
)
from runner.commands.common import add_location_arguments, locations_from_args
from runner.gpus import query_gpus
from runner.kernel_cache import KernelCache, resolve_kernel_cache
from runner.planner.fit import fitting_derived_recipe, memory_fit
from runner.planner.topology import topology_problems, tp_cp_warning
from runner.recipes import RECIPES, get_recipe
from runner.recipes.qwen3_next import QWEN3_NEXT_80B
from runner.runs.arguments import add_runs_dir_argument
from runner.slime_args.render import train_flags


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--recipe", default="megatron-8gpu", choices=sorted(RECIPES),
                   help="the recipe to check for (default %(default)s)")
    p.add_argument("--gpu", action="store_true", help="also run the GPU kernel self-checks (fla, causal-conv1d)")
    p.add_argument("--no-imports", action="store_true", help="skip importing the stack in a subprocess (faster)")
    p.add_argument("--kernel-cache", metavar="DIR", default=None,
                   help="where --gpu's compiled Triton kernels go, as smoke and train: caches under DIR (default: the "
                        "environment's TRITON_CACHE_DIR etc., else ~/.cache/slime-qwen3-next/kernels)")
    add_location_arguments(p)
    add_runs_dir_argument(p)


def collect(args, environ=None) -> list[Check]:
    environ = os.environ if environ is None else environ
    recipe = get_recipe(args.recipe)
    locs = locations_from_args(args, environ)
    checks: list[Check] = [Check("recipe", OK, f"{recipe.name}: {recipe.summary} [{recipe.status}]")]
    for line in locs.describe():
        checks.append(Check("location", OK, line))

    facts = query_gpus(environ)
    blocking = preflight.gpu_problems(recipe, facts, recipe.layout.gpus_per_node)
    if facts.error:
        checks.append(Check("gpus", FAIL, facts.error, "install the NVIDIA driver or run on a GPU node"))
    else:
        names = sorted({f"{g.name} (cc {'.'.join(map(str, g.compute_capability or ()))}, {g.memory_gib:.1f} GiB)"
                        for g in facts.gpus})
        checks.append(Check("gpus", FAIL if blocking else OK, f"{facts.count} x {', '.join(names)} via {facts.source}",
                            "; ".join(blocking)))
        checks.append(Check("nvlink", OK if facts.has_nvlink else WARN,
                            f"{facts.nvlink_links} NVLink entries in `nvidia-smi topo -m`",
                            "" if facts.has_nvlink else "without NVLink, NCCL_NVLS_ENABLE=0 and slower all-to-all"))
        if facts.gpus:
            checks.append(Check("driver", OK, f"NVIDIA driver {facts.gpus[0].driver_version}"))
    checks.append(libcuda_check(environ))
    checks += package_checks(environ)
    # The kernel caches smoke and train use: the fla probe (Triton's launcher) and --gpu compile into them.
    caches = resolve_kernel_cache(getattr(args, "kernel_cache", None), environ)
    if not args.no_imports:
        checks += import_checks(recipe)
        checks.append(fla_device_check(bool(facts.gpus), {**environ, **caches.env}))
    blackwell = any(g.is_blackwell for g in facts.gpus)
    checks.append(fla_patch_check(blackwell, recipe.backend))

    slime = preflight.slime_problems(recipe, locs.slime_dir.value, locs.megatron_dir.value)
    checks.append(Check("slime + Megatron-LM", FAIL if slime else OK,
                        "; ".join(slime) if slime else f"{locs.slime_dir.value}, {locs.megatron_dir.value}"))
    checks.append(megatron_patch_check(recipe.backend, locs.slime_dir.value, locs.megatron_dir.value, environ))
    checks.append(slime_resume_check(locs.slime_dir.value))

    base = inputs.base_folder_problem(locs)
    flags = train_flags(recipe, str(locs.base))
    if base:
        # What lives under BASE_FOLDER would only repeat it, once per row.
        checks.append(Check("base folder", FAIL, base))
        checks += [Check(name, SKIP, "under BASE_FOLDER, which is a file (see base folder)") for name in
                   ("hf checkpoint", "torch_dist checkpoint", "datasets")]
    else:
        checks += _base_folder_checks(recipe, flags, bool(slime))
    checks.append(_runs_dir_check(args, environ, base_is_file=bool(base)))
    checks.append(disk_check(str(locs.base)))

    topo = topology_problems(flags, recipe.backend, QWEN3_NEXT_80B, nodes=recipe.layout.nodes,
                             gpus_per_node=recipe.layout.gpus_per_node)
    checks.append(Check("topology", FAIL if topo else OK, "; ".join(topo) if topo else "parallel sizes divide"))
    warning = tp_cp_warning(flags, recipe.backend)
    if warning:
        checks.append(Check("grad-norm (TP x CP)", WARN, warning))
    checks.append(_memory_check(recipe, flags, facts, str(locs.base)))
    if args.gpu:
        checks.append(Check("kernel cache", OK, "; ".join(caches.describe())))
        checks += _gpu_kernel_checks(caches)
    return checks


def _base_folder_checks(recipe, flags, slime_missing: bool) -> list[Check]:  # noqa: ANN001
    """The checkpoints and datasets the recipe reads under BASE_FOLDER."""
    checks = []
    hf = flags.value("hf-checkpoint")
    try:
        summary = validate_hf_checkpoint(Path(hf))
        checks.append(Check("hf checkpoint", OK, f"{hf}: {len(summary.shards)} shards, "
                                                 f"{summary.total_bytes / 1e9:.0f} GB, headers readable"))
    except CheckpointError as exc:
        checks.append(Check("hf checkpoint", FAIL, str(exc)))
    ref = flags.value("ref-load")
    if recipe.backend == "megatron" and ref:
        done = torch_dist_complete(Path(ref))
        # convert needs slime and Megatron-LM: say so first when they are missing.
        convert = ("set SLIME_DIR and MEGATRON_DIR (--slime-dir, --megatron-dir), then run `python -m runner convert`"
                   if slime_missing else "run `python -m runner convert`")
        checks.append(Check("torch_dist checkpoint", OK if done else FAIL, ref, "" if done else convert))
    data = preflight.dataset_problems(flags)
    checks.append(Check("datasets", FAIL if data else OK, "; ".join(data) if data else
                        f"{flags.value('prompt-data')} and the eval set carry the input/label keys"))
    return checks


def _runs_dir_check(args, environ, base_is_file: bool) -> Check:  # noqa: ANN001
    """Where train would create the run's directory: as train checks it (it probes by making one)."""
    from runner.runs.layout import resolve_runs_dir
    from runner.runs.setup import runs_dir_problem

    runs_dir = resolve_runs_dir(getattr(args, "runs_dir", None), getattr(args, "base_folder", None), environ)
    if base_is_file and runs_dir.source in ("--base-folder", "$BASE_FOLDER", "default"):
        return Check("runs dir", SKIP, "under BASE_FOLDER, which is a file (see base folder)")
    problem = runs_dir_problem(runs_dir)
    if problem:
        return Check("runs dir", FAIL, problem)
    return Check("runs dir", OK, f"{runs_dir.value} (from {runs_dir.source}): runs can be created there")


def _memory_check(recipe, flags, facts, base_folder: str) -> Check:
    fit = memory_fit(recipe, flags, facts)
    if fit is None:
        return Check("memory plan", SKIP, "no GPUs seen: run `python -m runner plan --gpu h100` to plan for one")
    ok, reasons, gib = fit
    if ok:
        return Check("memory plan", OK, f"fits {gib:.1f} GiB GPUs")
    # As train says it: the derived recipe that fits these GPUs, when there is one.
    derived = fitting_derived_recipe(recipe, facts, base_folder)
    return Check("memory plan", FAIL, "; ".join(reasons),
                 derived or f"see `python -m runner plan --recipe {recipe.name}`")


def _gpu_kernel_checks(caches: KernelCache) -> list[Check]:
    # The checks run in this process: Triton, flashinfer and torch read these
    # variables when they compile, so setting them before the first kernel is enough.
    os.environ.update(caches.env)
    try:
        from runner.checks.gpu_kernels import run_gpu_checks
    except ImportError as exc:
        return [Check("gpu kernels", FAIL, f"cannot load the GPU checks: {exc}")]
    return run_gpu_checks()


def run(args) -> int:
    if args.dry_run:
        # doctor only reads; a dry-run says what it would look at.
        caches = resolve_kernel_cache(args.kernel_cache, os.environ).describe() if args.gpu else []
        print(json.dumps({"processes": [], "problems": [], "notes": ["doctor reads only: nvidia-smi, installed "
                          "packages, files under BASE_FOLDER, SLIME_DIR, MEGATRON_DIR"] +
                          [f"--gpu compiles kernels into {c}" for c in caches]}) if args.json else
              "doctor reads only (nvidia-smi, installed packages, files under BASE_FOLDER, SLIME_DIR, MEGATRON_DIR); "
              "it starts nothing but, with --gpu, kernel checks on the GPU" +
              "".join(f"\n--gpu compiles kernels into {c}" for c in caches))
        return 0
    checks = collect(args)
    blocking = [c for c in checks if c.blocking]
    if args.json:
        print(json.dumps({"recipe": args.recipe, "ready": not blocking, "checks": [c.to_json() for c in checks]},
                         indent=2))
    else:
        print(render_table(checks))
        print()
        print(f"{'NOT READY' if blocking else 'READY'} for {args.recipe}: "
              f"{len(blocking)} blocking, {sum(c.status == WARN for c in checks)} warning(s)")
    sys.stdout.flush()
    return 1 if blocking else 0
