"""Individual doctor checks that inspect the installed stack (read-only)."""

from __future__ import annotations

import ctypes.util
import importlib.metadata
import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Mapping

from runner.checks.fla_device import likely_cause, run_probe
from runner.checks.patch_state import patch_state
from runner.checks.rows import FAIL, OK, SKIP, WARN, Check
from runner.recipes.base import Recipe

PINS_ENV = "SLIME_RUNNER_PINS"
LIBCUDA_ENV = "SLIME_RUNNER_LIBCUDA_DIR"
# Disk a full run needs under BASE_FOLDER: HF weights (~163 GB), torch_dist
# (~same) and actor checkpoints (bf16 weights + optimizer states).
DISK_NEEDED_GB = 600


def pins_path(environ: Mapping[str, str]) -> Path:
    if environ.get(PINS_ENV):
        return Path(environ[PINS_ENV])
    return Path(__file__).resolve().parents[2] / "nix" / "pins.json"


def load_pins(environ: Mapping[str, str]) -> dict | None:
    try:
        return json.loads(pins_path(environ).read_text())
    except (OSError, json.JSONDecodeError):
        return None


def _installed(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def version_matches(installed: str, pinned: str) -> bool:
    # A local build suffix (+cu128, +git...) does not change the release.
    return installed.split("+")[0] == pinned.split("+")[0]


def package_checks(environ: Mapping[str, str]) -> list[Check]:
    pins = load_pins(environ)
    if pins is None:
        return [Check("packages vs pins", SKIP, f"{pins_path(environ)} not found (set {PINS_ENV})")]
    wanted: dict[str, str] = dict(pins.get("python_packages", {}))
    for name in ("flash-linear-attention", "causal-conv1d"):
        source = pins.get("sources", {}).get(name)
        if source and source.get("version"):
            wanted.setdefault(name, source["version"])
    rows = []
    missing, different = [], []
    for dist, version in sorted(wanted.items()):
        have = _installed(dist)
        if have is None:
            missing.append(dist)
        elif not version_matches(have, version):
            different.append(f"{dist} {have} (pinned {version})")
    detail = f"{len(wanted) - len(missing) - len(different)}/{len(wanted)} match {pins_path(environ).name}"
    if missing:
        rows.append(Check("packages vs pins", FAIL, f"{detail}; missing: {', '.join(missing)}",
                          "run inside the pinned stack: `nix develop` or `nix run .#...`"))
    elif different:
        rows.append(Check("packages vs pins", WARN, f"{detail}; different: {', '.join(different)}",
                          "versions other than the pinned ones are untested with this recipe"))
    else:
        rows.append(Check("packages vs pins", OK, detail))
    return rows


# What each backend imports; checked in a subprocess so a broken extension
# cannot take the doctor down with it.
IMPORTS = {
    "megatron": ("torch", "ray", "sglang", "transformers", "megatron.core", "fla", "slime"),
    "fsdp": ("torch", "ray", "sglang", "transformers", "fla", "slime"),
}
OPTIONAL_IMPORTS = ("causal_conv1d",)


def import_checks(recipe: Recipe, timeout: float = 180.0) -> list[Check]:
    modules = IMPORTS[recipe.backend] + OPTIONAL_IMPORTS
    code = (
        "import importlib, json, sys\n"
        "out = {}\n"
        f"for m in {list(modules)!r}:\n"
        "    try:\n"
        "        mod = importlib.import_module(m)\n"
        "        out[m] = [True, str(getattr(mod, '__version__', ''))]\n"
        "    except BaseException as e:\n"
        "        out[m] = [False, (type(e).__name__ + ': ' + str(e)).splitlines()[0][:200]]\n"
        "print(json.dumps(out))\n"
    )
    try:
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout)
        results = json.loads(proc.stdout.strip().splitlines()[-1])
    except (subprocess.TimeoutExpired, json.JSONDecodeError, IndexError) as exc:
        return [Check("imports", FAIL, f"the import check did not finish: {exc}")]
    checks = []
    for module in modules:
        ok, info = results.get(module, [False, "not checked"])
        optional = module in OPTIONAL_IMPORTS
        if ok:
            checks.append(Check(f"import {module}", OK, info or "imported"))
        else:
            fix = ("optional: fla falls back to its Triton short convolution" if optional else
                   "run inside the pinned stack (nix develop)")
            if module == "fla":
                fix = ("slime's Qwen3-Next spec swallows this ImportError and fails later with a NameError; "
                       "install fla at 9714c595 (the flake does)")
            checks.append(Check(f"import {module}", WARN if optional else FAIL, info, fix))
    return checks


FLA_WY_FAST = Path("ops/gated_delta_rule/wy_fast.py")
PATCH_MARKER = "inline_asm_elementwise"


def fla_patch_present(fla_dir: Path) -> bool | None:
    try:
        source = (fla_dir / FLA_WY_FAST).read_text()
    except OSError:
        return None
    start = source.find("def prepare_wy_repr_bwd_kernel")
    body = source[start:] if start >= 0 else source
    return PATCH_MARKER in body


def fla_patch_check(blackwell: bool, backend: str) -> Check:
    spec = importlib.util.find_spec("fla")
    if spec is None or not spec.submodule_search_locations:
        return Check("fla Blackwell patch", SKIP, "fla not installed")
    fla_dir = Path(list(spec.submodule_search_locations)[0])
    present = fla_patch_present(fla_dir)
    if present is None:
        return Check("fla Blackwell patch", WARN, f"{fla_dir / FLA_WY_FAST} not found: unknown fla layout")
    if present:
        return Check("fla Blackwell patch", OK, f"present in {fla_dir / FLA_WY_FAST}")
    if blackwell:
        return Check("fla Blackwell patch", FAIL, f"missing from {fla_dir / FLA_WY_FAST} on a Blackwell GPU "
                                                 f"(triton issue 8695 breaks the GDN backward there)",
                     "use the flake's fla, or apply patches/ to fla 9714c595")
    return Check("fla Blackwell patch", OK, "not present; this GPU is not Blackwell and does not need it")


def libcuda_check(environ: Mapping[str, str]) -> Check:
    chosen = environ.get(LIBCUDA_ENV)
    if chosen:
        # nix/find-libcuda.sh links the driver's libraries into a private
        # directory (SLIME_RUNNER_DRIVER_LIBS); that is what the process loads.
        links = environ.get("SLIME_RUNNER_DRIVER_LIBS", "")
        found = Path(links or chosen, "libcuda.so.1").exists()
        how = environ.get("SLIME_RUNNER_LIBCUDA_SOURCE", "the flake's wrapper")
        via = f", linked in {links}" if links else ""
        return Check("libcuda", OK if found else FAIL,
                     f"{chosen}/libcuda.so.1 (found by the flake's wrapper: {how}{via})",
                     "" if found else "the host's NVIDIA driver library is not where the wrapper looked")
    name = ctypes.util.find_library("cuda")
    if name:
        return Check("libcuda", OK, f"{name} (dynamic linker search)")
    for d in ("/run/opengl-driver/lib", "/usr/lib/x86_64-linux-gnu", "/usr/lib64", "/usr/local/nvidia/lib64"):
        if Path(d, "libcuda.so.1").exists():
            return Check("libcuda", OK, f"{d}/libcuda.so.1")
    return Check("libcuda", FAIL, "libcuda.so.1 not found", "install the NVIDIA driver; under Nix use the flake's apps")


def disk_check(base_folder: str) -> Check:
    path = Path(base_folder)
    probe = next((p for p in (path, *path.parents) if p.exists()), Path("/"))
    free_gb = shutil.disk_usage(probe).free / 1e9
    if free_gb < DISK_NEEDED_GB:
        return Check("disk", WARN, f"{free_gb:.0f} GB free at {probe}",
                     f"a full run needs about {DISK_NEEDED_GB} GB (HF + torch_dist + actor checkpoints)")
    return Check("disk", OK, f"{free_gb:.0f} GB free at {probe}")


def fla_device_check(gpus_seen: bool, environ: Mapping[str, str], python: str = sys.executable) -> Check:
    """fla picks its device once, at import, and says 'cpu' with only a
    warning when Triton's CUDA driver fails to start (runner/checks/fla_device.py)."""
    if not gpus_seen:
        return Check("fla device", SKIP, "no GPU seen: fla's device detection is checked on GPU machines")
    result = run_probe(python, environ)
    if result.device is None:
        return Check("fla device", WARN, f"not checked: {result.error}")
    if result.device == "cuda":
        return Check("fla device", OK, "fla's device detection says cuda")
    cause, fix = likely_cause(result, environ)
    return Check("fla device", FAIL, f"fla's device detection says '{result.device}' on a GPU machine: {cause}", fix)


def slime_resume_check(slime_dir: str | None) -> Check:
    """Does SLIME_DIR's slime continue a resumed run at the checkpoint's
    rollout? Judged by running its own slime_validate_args
    (runner/checks/slime_resume.py), not by the patch's text."""
    from runner.checks import slime_resume

    name = "slime resume"
    if not slime_dir:
        return Check(name, SKIP, "no slime tree to check (see slime + Megatron-LM)")
    verdict = slime_resume.check_resume(slime_dir)
    if verdict.state == slime_resume.KEEPS:
        return Check(name, OK, verdict.detail)
    if verdict.state == slime_resume.RESETS:
        return Check(name, FAIL, verdict.detail, slime_resume.fix_hint(slime_dir))
    if verdict.state == slime_resume.ABSENT:
        return Check(name, SKIP, f"{verdict.detail}: not a slime checkout (see slime + Megatron-LM)")
    return Check(name, WARN, verdict.detail)


MEGATRON_PATCHES = ("docker/patch/latest/megatron.patch",)  # when pins.json does not say
GATED_ATTENTION_ARG = "'--use-gated-attention'"  # what the patch adds to megatron/training/arguments.py


def megatron_patch_check(backend: str, slime_dir: str | None, megatron_dir: str | None,
                         environ: Mapping[str, str]) -> Check:
    """Is MEGATRON_DIR patched with slime's Megatron patch? Without it slime's
    parser rejects the Megatron recipes (unrecognized arguments:
    --use-gated-attention). Judged hunk by hunk against the patch in
    SLIME_DIR (runner/checks/patch_state.py)."""
    name = "Megatron-LM patch"
    if backend != "megatron":
        return Check(name, SKIP, f"the {backend} backend does not use Megatron-LM's argument parser")
    if not megatron_dir or not Path(megatron_dir, "megatron").is_dir():
        return Check(name, SKIP, "no Megatron-LM tree to check (see slime + Megatron-LM)")
    source = ((load_pins(environ) or {}).get("sources") or {}).get("megatron-lm") or {}
    rev = source.get("rev", "")[:8] or "3714d81d"
    patches = source.get("patches_from_slime") or MEGATRON_PATCHES
    hunks = 0
    for rel in patches:
        fix = f"patch -p1 -d {megatron_dir} < {slime_dir}/{rel}"
        try:
            text = Path(slime_dir or "", rel).read_text()
        except OSError:
            args = Path(megatron_dir, "megatron", "training", "arguments.py")
            has_flag = args.is_file() and GATED_ATTENTION_ARG in args.read_text(errors="replace")
            detail = f"{rel} not found under SLIME_DIR; checked only the --use-gated-attention flag it adds: "
            if has_flag:
                return Check(name, OK, detail + f"present in {args}")
            return Check(name, FAIL, detail + f"missing from {args}: slime's parser will reject the Megatron "
                                               f"recipes", f"apply slime's {rel} to Megatron-LM {rev}")
        state = patch_state(Path(megatron_dir), text)
        hunks += state.hunks
        if state.pristine:
            return Check(name, FAIL, f"{megatron_dir} is not patched with slime's {rel}: slime's parser rejects the "
                                     f"Megatron recipes (unrecognized arguments: --use-gated-attention)", fix)
        if not state.complete:
            files = ", ".join(state.missing_files[:3]) + (" ..." if len(state.missing_files) > 3 else "")
            return Check(name, FAIL, f"{megatron_dir} has {state.applied}/{state.hunks} hunks of slime's {rel} "
                                     f"(missing in {files}): a partial patch or not Megatron-LM {rev}",
                         f"start from a clean Megatron-LM {rev} checkout, then {fix}")
    return Check(name, OK, f"slime's {', '.join(patches)} fully applied in {megatron_dir} ({hunks} hunks)")
