"""A machine that has everything a recipe needs (8 GPUs recorded, slime and
Megatron-LM trees, checkpoints, data), and helpers to run the real CLI on it and
to assert its refusals. Tests get it as the `machine` fixture (tests/conftest.py)."""

from __future__ import annotations

from pathlib import Path

import shutil

from runner.launch.processes import processes_with_marker
from tests.conftest import DATA, run_cli, unused_short_path
from tests.gpu_recordings import record
from tests.hf_fixtures import make_base_folder

MEGATRON_PATCH_FIXTURE = DATA / "megatron_patch"  # verbatim excerpts of slime's patch and Megatron-LM's file


def make_source_trees(root: Path, patched: bool = True) -> tuple[Path, Path]:
    """slime (train.py, its Megatron patch) and Megatron-LM (megatron/, the file the patch changes, patched or
    not) under root: what train's preflight reads of them."""
    slime, megatron = root / "slime", root / "Megatron-LM"
    shutil.copytree(MEGATRON_PATCH_FIXTURE / "slime", slime)
    (slime / "train.py").write_text("")
    shutil.copytree(MEGATRON_PATCH_FIXTURE / ("patched" if patched else "unpatched"), megatron)
    return slime, megatron


# Recorded GPUs a machine can have: nvidia-smi's name and memory (MiB).
GPUS = {"h100": {}, "h200": {"name": "NVIDIA H200", "mib": 143771}}


def make_machine(tmp_path: Path, gpu: str = "h200", force: bool = True) -> dict:
    """8 `gpu`s, slime and Megatron-LM, checkpoints and data under tmp_path; args: the CLI's locations, an
    unused --ray-temp-dir and (force) --force, for tests whose subject is not the recipe's memory plan."""
    base = make_base_folder(tmp_path / "models")
    slime, megatron = make_source_trees(tmp_path)
    env = record(tmp_path / "gpus", 8, **GPUS[gpu])
    temp = unused_short_path()
    args = ["--base-folder", str(base), "--slime-dir", str(slime), "--megatron-dir", str(megatron),
            "--ray-temp-dir", str(temp), *(["--force"] if force else [])]
    return {"env": env, "args": args, "temp": temp, "base": base, "tmp": tmp_path}


def train(machine: dict, *extra: str, recipe: str = "megatron-8gpu", dry: bool = False, env: dict | None = None):
    dry_flags = ["--dry-run", "--json"] if dry else []
    return run_cli("train", "--recipe", recipe, *machine["args"], *dry_flags, *extra,
                   env={**machine["env"], **(env or {})})


def error_lines(result) -> list[str]:  # noqa: ANN001 - a CompletedProcess
    return [line for line in result.stderr.splitlines() if line.startswith("error: ")]


def refused(machine: dict | None, result, fragment: str = "", *, alone: bool = True,  # noqa: ANN001
            code: int | None = 2) -> str:
    """The runner's refusal: exit `code` (None: any), no traceback, an error line containing `fragment`
    (alone: the only error line); on a `machine`, nothing started or written. Returns that line."""
    if code is not None:
        assert result.returncode == code, (result.stdout, result.stderr)
    errors = error_lines(result)
    assert "Traceback" not in result.stderr
    if alone:
        assert len(errors) == 1, result.stderr
    matching = [e for e in errors if fragment in e]
    assert matching, result.stderr
    if machine is not None:
        assert not machine["temp"].exists(), "nothing may be started or written"
        assert not processes_with_marker(str(machine["temp"]))
    return matching[0]
