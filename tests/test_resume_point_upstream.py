"""The complete-checkpoint rules and the --ckpt-step fallback against the pinned upstream code
itself: slime 3d7599aa's FSDP save() and load() run on CPU, and Megatron-LM 3714d81d's own
functions that pick the folder a load reads."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

from runner.runs.checkpoints import TRACKER, complete_iterations, latest_complete
from tests.conftest import REPO, free_port
from tests.nix.nixtools import PINS, upstream_tree

MEGATRON_CHECKPOINTING = Path("megatron/training/checkpointing.py")


def _probe(slime: Path, folder: Path, *args: str) -> dict:
    r = subprocess.run([sys.executable, str(REPO / "tests" / "fsdp_checkpoint_probe.py"), str(slime), str(folder),
                        args[0], str(free_port()), *args[1:]], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads(r.stdout.strip().splitlines()[-1])


def test_slimes_own_fsdp_save_and_the_ckpt_step_fallback(tmp_path):
    slime = upstream_tree("slime", "SLIME_NIX_SLIME_SRC", PINS["sources"]["slime"]["rev"], tmp_path / "slime-src")
    folder = tmp_path / "checkpoints"
    saved = _probe(slime, folder, "save")
    # slime saves rollout r as iter_{r+1}; the tracker names 40, whose data state was never written.
    assert (folder / TRACKER).read_text() == "40"
    assert sorted(p.name for p in (folder / "iter_0000040").iterdir()) == [
        "lr_scheduler", "meta.json", "model", "optimizer", "rng.pt"]
    assert complete_iterations(folder, global_dataset=True) == [20]
    assert complete_iterations(folder, global_dataset=False) == [20, 40]
    point = latest_complete(folder, global_dataset=True)
    assert (point.backend, point.iteration, point.next_rollout) == ("fsdp", 20, 20)
    assert point.ckpt_step_args() == ("--ckpt-step", "20")
    # slime's load honours --ckpt-step: iter_20's weights, and training continues at rollout 20.
    loaded = _probe(slime, folder, "load", "20")
    assert loaded == {"weight": saved["19"], "start_rollout_id": 20, "iteration": 20}
    plain = _probe(slime, folder, "load", "-1")  # without it: the tracker's
    assert plain == {"weight": saved["39"], "start_rollout_id": 40, "iteration": 40}
    # A save that died before meta.json (written last) is not complete.
    (folder / "iter_0000040" / "meta.json").unlink()
    assert complete_iterations(folder, global_dataset=False) == [20]


def _megatron_functions(megatron: Path) -> dict:
    """Megatron's own tracker and folder functions, taken from its source and run as they are."""
    import os

    import torch

    source = (megatron / MEGATRON_CHECKPOINTING).read_text()
    wanted = {"get_checkpoint_name", "get_checkpoint_tracker_filename", "read_metadata",
              "get_load_checkpoint_path_by_args"}
    tree = ast.parse(source)
    nodes = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name in wanted]
    assert {n.name for n in nodes} == wanted
    namespace = {"os": os, "torch": torch, "isfile": os.path.isfile, "open_file": open, "sys": sys,
                 "print_rank_0": print, "mpu": None}  # mpu: unused with return_base_dir=True
    exec(compile(ast.Module(body=nodes, type_ignores=[]), str(MEGATRON_CHECKPOINTING), "exec"), namespace)
    return namespace


def test_megatrons_own_load_path_honours_ckpt_step_but_not_zero(tmp_path):
    from types import SimpleNamespace

    megatron = upstream_tree("megatron-lm", "SLIME_NIX_MEGATRON_SRC", PINS["sources"]["megatron-lm"]["rev"],
                             tmp_path / "megatron-src")
    fns = _megatron_functions(megatron)
    folder = tmp_path / "checkpoints"
    folder.mkdir()
    (folder / TRACKER).write_text("39")
    path = fns["get_load_checkpoint_path_by_args"]
    assert path(SimpleNamespace(load=str(folder), ckpt_step=None)) == str(folder / "iter_0000039")
    assert path(SimpleNamespace(load=str(folder), ckpt_step=19)) == str(folder / "iter_0000019")
    # `if getattr(args, "ckpt_step", None)`: a step of 0 is ignored (ResumePoint.problem refuses it).
    assert path(SimpleNamespace(load=str(folder), ckpt_step=0)) == str(folder / "iter_0000039")
    (folder / TRACKER).write_text("release")  # a converted reference checkpoint: the step does not move it
    assert path(SimpleNamespace(load=str(folder), ckpt_step=19)) == str(folder / "release")
    # The load itself (_load_base_checkpoint) takes the step the same way.
    source = (megatron / MEGATRON_CHECKPOINTING).read_text()
    base = next(n for n in ast.parse(source).body
                if isinstance(n, ast.FunctionDef) and n.name == "_load_base_checkpoint")
    step = [ast.unparse(n) for n in ast.walk(base) if isinstance(n, ast.If) and "ckpt_step" in ast.unparse(n.test)]
    assert step == ["if getattr(args, 'ckpt_step', None):\n    iteration = args.ckpt_step"]
