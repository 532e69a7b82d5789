"""A machine that has everything a recipe needs (8 x H200 recorded, slime and
Megatron-LM trees, checkpoints, data), and helpers to run the real CLI on it."""

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


def make_machine(tmp_path: Path) -> dict:
    base = make_base_folder(tmp_path / "models")
    slime, _ = make_source_trees(tmp_path)
    env = record(tmp_path / "gpus", 8, name="NVIDIA H200", mib=143771)
    temp = unused_short_path()
    # --force: the fsdp recipe's memory plan is not what these tests are about.
    args = ["--base-folder", str(base), "--slime-dir", str(slime), "--megatron-dir", str(tmp_path / "Megatron-LM"),
            "--ray-temp-dir", str(temp), "--force"]
    return {"env": env, "args": args, "temp": temp, "base": base, "tmp": tmp_path}


def train(machine: dict, *extra: str, recipe: str = "megatron-8gpu", dry: bool = False, env: dict | None = None):
    dry_flags = ["--dry-run", "--json"] if dry else []
    return run_cli("train", "--recipe", recipe, *machine["args"], *dry_flags, *extra,
                   env={**machine["env"], **(env or {})})


def refused(machine: dict, result, fragment: str) -> str:
    """Exit 2, exactly one error line, containing `fragment`; no traceback; nothing started or written."""
    assert result.returncode == 2, (result.stdout, result.stderr)
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, result.stderr
    assert fragment in errors[0], errors[0]
    assert "Traceback" not in result.stderr
    assert not machine["temp"].exists(), "nothing may be started or written"
    assert not processes_with_marker(str(machine["temp"]))
    return errors[0]
