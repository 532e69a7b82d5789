"""Run slime's own code on CPU, at the pins: `parse_args` (both backends) and
what train.py does with its result (`create_training_models`).

What runs: slime 3d7599aa's slime.utils.arguments.parse_args (with its
validate functions, Megatron-LM 3714d81d + slime's patch for the Megatron
backend, and sglang 0.5.6.post1's server arguments, as train.py calls it), in
the pinned stack's Python: SLIME_STACK_PYTHON, which `tools/stack-env.sh`
builds (`uv sync --extra stack` without the CUDA source builds, slime's
sglang.patch applied; .ci/run does it). slime and Megatron-LM come from the
pinned tarballs (SLIME_UPSTREAM_SOURCES, tests/nix/nixtools.upstream_tree).
Without either the callers skip, saying why.

Stand-ins, each for something that cannot exist on a CPU machine and none
for the code under test:
  flash_attn: a CUDA-only package that slime's FSDP actor module imports
    (through ring_flash_attn) when the parser loads the FSDP arguments; its
    functions are never called while parsing;
  transformer_engine: made unimportable, Megatron's documented no-TE path
    (its torch extension is a CUDA build; the flag-schema tool does the same);
  torch.cuda.get_device_capability and get_device_properties: Megatron's
    validate_args asks the GPU for its compute capability (and, with tensor
    or context parallelism, for its architecture through
    get_device_properties(0).major); here an H100/H200 answers (9, 0).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.nix.nixtools import PINS, upstream_tree

REPO = Path(__file__).resolve().parents[1]

_FLASH_ATTN_STANDIN = '''\
"""Stand-in for the CUDA-only flash_attn: importable, never called while parsing."""


def __getattr__(name):
    def unavailable(*args, **kwargs):
        raise RuntimeError(f"flash_attn.{name}: stand-in module (no CUDA kernels on this machine)")

    return unavailable
'''

# Runs in the stack's Python. Each case: {"argv": [...], "env": {...}, "then": None | "create_training_models"}.
_DRIVER = '''\
import contextlib, io, json, os, sys

sys.modules["transformer_engine"] = None  # Megatron's no-TE path (a CUDA build)
sys.modules["transformer_engine_torch"] = None
import torch

# No GPU here: an H100/H200 answers.
torch.cuda.get_device_capability = lambda *args, **kwargs: (9, 0)
torch.cuda.get_device_properties = lambda *args, **kwargs: type("H100", (), {"major": 9, "minor": 0})()
from slime.utils.arguments import parse_args

cases, wanted, result = json.load(open(sys.argv[1])), sys.argv[2].split(","), sys.argv[3]


def create_training_models(args, actor_reports):
    """slime's own create_training_models, with a stand-in actor group (the
    training actors need GPUs) that reports `actor_reports` from its init, and
    a stand-in rollout manager that records what it is asked to load."""
    import ray
    from slime.ray import placement_group

    class ActorGroup:
        def async_init(self, args, role, with_ref):
            return [ray.put(r) for r in actor_reports]

        def set_rollout_manager(self, manager):
            pass

    class RolloutManager:
        loads = []

        class load:
            @staticmethod
            def remote(rollout_id):
                RolloutManager.loads.append(rollout_id)
                return ray.put(None)

    if not ray.is_initialized():
        ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False)
    placement_group.allocate_train_group = lambda **kwargs: ActorGroup()
    placement_group.create_training_models(args, {"actor": None, "critic": None}, RolloutManager)
    return {"start_rollout_id": args.start_rollout_id, "rollout_manager_loads": RolloutManager.loads}


out = {}
environ = dict(os.environ)
for name, case in cases.items():
    sys.argv = ["train.py", *case["argv"]]
    os.environ.clear()
    os.environ.update(environ, **{k: v for k, v in case.get("env", {}).items() if k != "PYTHONPATH"})
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            args = parse_args()
        out[name] = {"args": {k: getattr(args, k, "<missing>") for k in wanted}}
        if case.get("then") == "create_training_models":
            out[name]["create_training_models"] = create_training_models(args, case["actor_reports"])
    except SystemExit as exc:  # argparse: usage error on stderr, exit 2
        out[name] = {"error": (err.getvalue().strip().splitlines() or [f"exit {exc.code}"])[-1]}
    except Exception as exc:  # slime's validate functions assert / raise
        out[name] = {"error": f"{type(exc).__name__}: {exc}"}
json.dump(out, open(result, "w"), default=repr)
'''


def stack_python() -> str:
    exe = os.environ.get("SLIME_STACK_PYTHON")
    if not exe or not Path(exe).exists():
        pytest.skip("no pinned stack Python (SLIME_STACK_PYTHON; tools/stack-env.sh builds one, .ci/run does)")
    return exe


def slime_tree(tmp: Path, patched: bool = True) -> Path:
    """slime at the pin, in a private copy, with this repo's patches/slime applied (or not)."""
    pristine = upstream_tree("slime", "SLIME_NIX_SLIME_SRC", PINS["sources"]["slime"]["rev"], tmp / "slime-src")
    dest = tmp / ("slime" if patched else "slime-unpatched")
    shutil.copytree(pristine, dest, symlinks=True)
    if patched:
        for rel in PINS["sources"]["slime"].get("patches", []):
            with open(REPO / rel, "rb") as f:
                subprocess.run(["patch", "-p1", "--forward", "--quiet", "--no-backup-if-mismatch"], stdin=f,
                               cwd=dest, check=True)
    return dest


def megatron_tree(tmp: Path, slime: Path) -> Path:
    """Megatron-LM at the pin with slime's Megatron patch, as nix/packages/megatron-lm.nix builds it."""
    pin = PINS["sources"]["megatron-lm"]
    pristine = upstream_tree("megatron-lm", "SLIME_NIX_MEGATRON_SRC", pin["rev"], tmp / "megatron-src")
    dest = tmp / "Megatron-LM"
    shutil.copytree(pristine, dest, symlinks=True)
    for rel in pin["patches_from_slime"]:
        with open(slime / rel, "rb") as f:
            subprocess.run(["patch", "-p1", "--forward", "--quiet", "--no-backup-if-mismatch"], stdin=f,
                           cwd=dest, check=True)
    return dest


def run_slime(cases: dict[str, dict], wanted: list[str], tmp: Path, *, slime: Path | None = None,
              megatron: Path | None = None) -> dict[str, dict]:
    """{case: {"args": {attr: value}, ...} or {"error": last stderr line}} from slime's own code.

    Each case is {"argv": [...]} (parse_args only) or also {"then": "create_training_models",
    "actor_reports": [...]}. `megatron` is needed for --train-backend megatron (the default).
    A case may carry "env": variables of train.py's process while it parses (e.g. the env_vars of the
    Ray job's runtime env, which Megatron's validate_args reads: CUDA_DEVICE_MAX_CONNECTIONS).
    """
    python = stack_python()
    slime = slime or slime_tree(tmp)
    standins = tmp / "standins" / "flash_attn"
    standins.mkdir(parents=True, exist_ok=True)
    (standins / "__init__.py").write_text(_FLASH_ATTN_STANDIN)
    (standins / "flash_attn_interface.py").write_text(_FLASH_ATTN_STANDIN)
    (tmp / "cases.json").write_text(json.dumps(cases))
    (tmp / "driver.py").write_text(_DRIVER)
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "PYTHONHOME") and not k.startswith(("RAY_", "WORLD_SIZE", "RANK", "LOCAL_RANK"))}
    env["PYTHONPATH"] = os.pathsep.join(str(p) for p in (megatron, slime, standins.parent) if p)
    env["CUDA_VISIBLE_DEVICES"] = ""
    proc = subprocess.run([python, str(tmp / "driver.py"), str(tmp / "cases.json"), ",".join(wanted),
                           str(tmp / "out.json")], capture_output=True, text=True, env=env, cwd=tmp, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads((tmp / "out.json").read_text())


def parse_with_slime(cases: dict[str, list[str]], wanted: list[str], tmp: Path) -> dict[str, dict]:
    """slime's FSDP parse_args on each argv (the FSDP backend needs no Megatron tree)."""
    return run_slime({name: {"argv": argv} for name, argv in cases.items()}, wanted, tmp)
